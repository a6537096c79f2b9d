package resilience

import (
	"bytes"
	"errors"
	"net/http"
	"testing"
	"time"
)

// FuzzCache drives the byte-facing cache calls (Set, Get, AppendGet,
// Delete, Contains, GetMany) with keys and values cut from the input and
// compares every answer with a map (the budget is large: no eviction).
func FuzzCache(f *testing.F) {
	f.Add([]byte("\x00\x03key\x05value\x01\x03key\x02\x03key\x01\x03key"))
	f.Add([]byte{0, 0, 0, 1, 0, 4, 0})
	f.Add(bytes.Repeat([]byte{5, 2, 'a', 'b'}, 30))
	c, err := NewCache(CacheConfig{MaxWeight: 1 << 30, Shards: 4})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := c.Clear(); err != nil {
			t.Fatal(err)
		}
		model := map[string][]byte{}
		next := func(max int) []byte {
			if len(data) == 0 {
				return nil
			}
			n := int(data[0]) % (max + 1)
			data = data[1:]
			if n > len(data) {
				n = len(data)
			}
			out := data[:n]
			data = data[n:]
			return out
		}
		var batch Batch
		buf := make([]byte, 0, 8)
		for len(data) > 0 {
			op := data[0] % 6
			data = data[1:]
			key := next(40)
			switch op {
			case 0:
				v := next(255)
				if err := c.Set(key, v); err != nil {
					t.Fatalf("Set: %v", err)
				}
				model[string(key)] = append([]byte(nil), v...)
			case 1:
				v, err := c.Get(key)
				want, ok := model[string(key)]
				if ok != (err == nil) || !bytes.Equal(v, want) || (err != nil && !errors.Is(err, ErrNotFound)) {
					t.Fatalf("Get %q = %q %v, want %q %v", key, v, err, want, ok)
				}
			case 2:
				v, found, err := c.AppendGet(buf, key)
				want, ok := model[string(key)]
				if err != nil || found != ok || !bytes.Equal(v, want) {
					t.Fatalf("AppendGet %q = %q %v %v", key, v, found, err)
				}
			case 3:
				ok, err := c.Delete(key)
				_, want := model[string(key)]
				if err != nil || ok != want {
					t.Fatalf("Delete %q = %v %v", key, ok, err)
				}
				delete(model, string(key))
			case 4:
				ok, err := c.Contains(key)
				_, want := model[string(key)]
				if err != nil || ok != want {
					t.Fatalf("Contains %q = %v %v", key, ok, err)
				}
			case 5:
				batch.Reset()
				keys := [][]byte{key}
				batch.Add(key)
				for i := 0; i < 3 && len(data) > 0; i++ {
					k := next(40)
					keys = append(keys, k)
					batch.Add(k)
				}
				if err := c.GetMany(&batch); err != nil {
					t.Fatalf("GetMany: %v", err)
				}
				for i, k := range keys {
					v, found := batch.Value(i)
					want, ok := model[string(k)]
					if found != ok || !bytes.Equal(v, want) || batch.Err(i) != nil {
						t.Fatalf("GetMany %q = %q %v, want %q", k, v, found, want)
					}
				}
			}
		}
	})
}

// FuzzIdempotency sends keys, fingerprints and responses cut from the input
// through Begin / Complete / Abandon and checks the answers against a model
// of the records (leases are long, so nothing expires during a case).
func FuzzIdempotency(f *testing.F) {
	f.Add([]byte("\x00\x02k1\x02fp\x01\x02k1\x04resp\x00\x02k1\x02fp"))
	f.Add([]byte("\x00\x00\x00\x00\x02\x01\x00"))
	type record struct {
		fp        string
		token     uint64
		completed bool
		response  []byte
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// A fresh store per case: records of earlier cases would fill the
		// budget (in-progress records are never evicted).
		s, err := NewIdempotencyStore(IdempotencyConfig{Shards: 1, MaxKeyLen: 16, MaxFingerprintLen: 16,
			MaxResponseLen: 64})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		model := map[string]*record{}
		next := func(max int) []byte {
			if len(data) == 0 {
				return nil
			}
			n := int(data[0]) % (max + 1)
			data = data[1:]
			if n > len(data) {
				n = len(data)
			}
			out := data[:n]
			data = data[n:]
			return out
		}
		for len(data) > 0 {
			op := data[0] % 3
			data = data[1:]
			key := next(20)
			rec := model[string(key)]
			switch op {
			case 0:
				fp := next(20)
				r, err := s.Begin(key, fp, time.Hour)
				switch {
				case len(key) == 0:
					if !errors.Is(err, ErrInvalidArg) {
						t.Fatalf("Begin empty key: %v", err)
					}
				case len(key) > 16 || len(fp) > 16:
					if !errors.Is(err, ErrTooLarge) {
						t.Fatalf("Begin oversized: %v", err)
					}
				case rec == nil:
					if err != nil || r.State != Started {
						t.Fatalf("Begin new = %+v %v", r, err)
					}
					model[string(key)] = &record{fp: string(fp), token: r.Token}
				case rec.fp != string(fp):
					if err != ErrMismatch {
						t.Fatalf("Begin mismatch = %+v %v", r, err)
					}
				case rec.completed:
					if err != nil || r.State != Completed || !bytes.Equal(r.Response, rec.response) {
						t.Fatalf("Begin replay = %+v %v", r, err)
					}
				default:
					if err != nil || r.State != InProgress {
						t.Fatalf("Begin in progress = %+v %v", r, err)
					}
				}
			case 1:
				resp := next(80)
				token := uint64(1)
				if rec != nil {
					token = rec.token
				}
				err := s.Complete(key, token, resp)
				switch {
				case len(key) == 0: // arguments are checked before the record
					if !errors.Is(err, ErrInvalidArg) {
						t.Fatalf("Complete empty key: %v", err)
					}
				case len(key) > 16 || len(resp) > 64:
					if !errors.Is(err, ErrTooLarge) {
						t.Fatalf("Complete oversized: %v", err)
					}
				case rec == nil:
					if !errors.Is(err, ErrNotFound) {
						t.Fatalf("Complete unknown: %v", err)
					}
				case rec.completed:
					if !errors.Is(err, ErrNotOwner) {
						t.Fatalf("Complete twice: %v", err)
					}
				default:
					if err != nil {
						t.Fatalf("Complete: %v", err)
					}
					rec.completed, rec.response = true, append([]byte(nil), resp...)
				}
			case 2:
				token := uint64(1)
				if rec != nil {
					token = rec.token
				}
				err := s.Abandon(key, token)
				switch {
				case len(key) == 0:
					if !errors.Is(err, ErrInvalidArg) {
						t.Fatalf("Abandon empty key: %v", err)
					}
				case len(key) > 16:
					if !errors.Is(err, ErrTooLarge) {
						t.Fatalf("Abandon oversized key: %v", err)
					}
				case rec == nil:
					if !errors.Is(err, ErrNotFound) {
						t.Fatalf("Abandon unknown: %v", err)
					}
				case rec.completed:
					if !errors.Is(err, ErrNotOwner) {
						t.Fatalf("Abandon completed: %v", err)
					}
				default:
					if err != nil {
						t.Fatalf("Abandon: %v", err)
					}
					delete(model, string(key))
				}
			}
		}
	})
}

// FuzzDecodeResponse: the stored-response decoder never panics on any
// bytes, and whatever it accepts encodes back to an equivalent response.
func FuzzDecodeResponse(f *testing.F) {
	f.Add(EncodeResponse(201, http.Header{"X": {"1", "2"}}, []byte("body")))
	f.Add([]byte{0, 200, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, rec []byte) {
		status, h, body, err := DecodeResponse(rec)
		if err != nil {
			return
		}
		s2, h2, b2, err := DecodeResponse(EncodeResponse(status, h, body))
		if err != nil || s2 != status || !bytes.Equal(b2, body) || len(h2) != len(h) {
			t.Fatalf("round trip: %v", err)
		}
		for k, v := range h {
			if len(h2[k]) != len(v) {
				t.Fatalf("header %q", k)
			}
			for i := range v {
				if h2[k][i] != v[i] {
					t.Fatalf("header %q value %d", k, i)
				}
			}
		}
	})
}

// FuzzKeyedLimiter sends keys cut from the input through Acquire,
// AcquireString and AcquireMany of a limiter that never refills, and checks
// every decision against a count per key.
func FuzzKeyedLimiter(f *testing.F) {
	f.Add([]byte("\x00\x01a\x00\x01a\x01\x01a\x02\x02ab\x00"))
	f.Add([]byte{2, 0, 2, 0, 2, 0, 0, 0})
	const burst = 3
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := NewKeyedLimiter(KeyedLimiterConfig{Quota: Quota{MaxBurst: burst - 1, Count: 1, Period: time.Hour},
			MaxKeys: 1 << 16, Shards: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		taken := map[string]int{}
		check := func(key []byte, d Decision) {
			want := taken[string(key)] < burst
			if d.Allowed != want || d.Limit != burst {
				t.Fatalf("key %q after %d takes: %+v", key, taken[string(key)], d)
			}
			if want {
				taken[string(key)]++
				if d.Remaining != uint64(burst-taken[string(key)]) {
					t.Fatalf("key %q remaining %d", key, d.Remaining)
				}
			} else if d.Reason != ReasonLimited || d.RetryAfter <= 0 {
				t.Fatalf("denied key %q: %+v", key, d)
			}
		}
		next := func() []byte {
			n := int(data[0]) % 8
			data = data[1:]
			if n > len(data) {
				n = len(data)
			}
			k := data[:n]
			data = data[n:]
			return k
		}
		var batch Batch
		var out []Decision
		for len(data) > 1 {
			op := data[0] % 3
			data = data[1:]
			switch op {
			case 0:
				k := next()
				d, err := l.Acquire(k, 1)
				if err != nil {
					t.Fatal(err)
				}
				check(k, d)
			case 1:
				k := next()
				d, err := l.AcquireString(string(k), 1)
				if err != nil {
					t.Fatal(err)
				}
				check(k, d)
			case 2:
				batch.Reset()
				var keys [][]byte
				for i := 0; i < 4 && len(data) > 0; i++ {
					k := next()
					keys = append(keys, k)
					batch.Add(k)
				}
				out, err = l.AcquireMany(&batch, 1, out)
				if err != nil || len(out) != len(keys) {
					t.Fatalf("AcquireMany: %d %v", len(out), err)
				}
				for i, k := range keys {
					check(k, out[i])
				}
			}
		}
	})
}
