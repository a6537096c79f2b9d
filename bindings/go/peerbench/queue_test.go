package peerbench

import (
	"testing"

	resilience "github.com/libresilience/libresilience/bindings/go"
)

// One push and one pop per op, on one goroutine; the Go peer is a buffered
// channel.
func BenchmarkQueuePushPop(b *testing.B) {
	b.Run("ours/MPMC", func(b *testing.B) {
		q, err := resilience.NewMPMC(1024)
		if err != nil {
			b.Fatal(err)
		}
		defer q.Close()
		if q.Push(7) != nil {
			b.Fatal("push")
		}
		if v, ok, _ := q.Pop(); !ok || v != 7 {
			b.Fatal("pop")
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			_ = q.Push(uint64(i))
			_, _, _ = q.Pop()
		}
	})
	b.Run("ours/SPSC", func(b *testing.B) {
		p, c, err := resilience.NewSPSC(1024)
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		defer c.Close()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			_ = p.Push(uint64(i))
			_, _, _ = c.Pop()
		}
	})
	b.Run("chan", func(b *testing.B) {
		ch := make(chan uint64, 1024)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			ch <- uint64(i)
			<-ch
		}
	})
}

// Batches of 64 pushed then popped; ns/op is per item.
func BenchmarkQueuePushPopBatch64(b *testing.B) {
	b.Run("ours/MPMC", func(b *testing.B) {
		q, _ := resilience.NewMPMC(1024)
		defer q.Close()
		in, out := make([]uint64, batchSize), make([]uint64, batchSize)
		for i := range in {
			in[i] = uint64(i)
		}
		if n, _ := q.PushMany(in); n != batchSize {
			b.Fatal("PushMany")
		}
		if n, _ := q.PopMany(out); n != batchSize || out[63] != 63 {
			b.Fatal("PopMany")
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i += batchSize {
			_, _ = q.PushMany(in)
			_, _ = q.PopMany(out)
		}
	})
	b.Run("ours/SPSC", func(b *testing.B) {
		p, c, _ := resilience.NewSPSC(1024)
		defer p.Close()
		defer c.Close()
		in, out := make([]uint64, batchSize), make([]uint64, batchSize)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i += batchSize {
			_, _ = p.PushMany(in)
			_, _ = c.PopMany(out)
		}
	})
	b.Run("chan", func(b *testing.B) {
		ch := make(chan uint64, 1024)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i += batchSize {
			for j := 0; j < batchSize; j++ {
				ch <- uint64(j)
			}
			for j := 0; j < batchSize; j++ {
				<-ch
			}
		}
	})
}
