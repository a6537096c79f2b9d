package resilience

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"time"
)

// retryAfterHeader formats d as a Retry-After value in whole seconds,
// rounded up, at least 1; "" for "not before a manual change" (forced
// open).
func retryAfterHeader(d time.Duration) string {
	if d >= time.Duration(math.MaxInt64)-time.Second {
		return ""
	}
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}

func setRetryAfter(w http.ResponseWriter, d time.Duration) {
	if v := retryAfterHeader(d); v != "" {
		w.Header().Set("Retry-After", v)
	}
}

// statusWriter records the status code a handler writes, passing
// everything through; with tee it also keeps a copy of the header and body
// (up to limit bytes).
type statusWriter struct {
	http.ResponseWriter
	status   int
	tee      bool
	limit    int
	header   http.Header
	body     bytes.Buffer
	overflow bool
	hijacked bool
}

// informational reports a 1xx status other than 101: an interim response
// (103 Early Hints, say) that the final one follows.
func informational(code int) bool {
	return code >= 100 && code < 200 && code != http.StatusSwitchingProtocols
}

func (w *statusWriter) WriteHeader(code int) {
	if informational(code) {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	if w.status == 0 {
		w.status = code
		if w.tee {
			w.header = w.ResponseWriter.Header().Clone()
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.tee && !w.overflow {
		if w.body.Len()+len(p) > w.limit {
			w.overflow = true
			w.body.Reset()
		} else {
			w.body.Write(p)
		}
	}
	return w.ResponseWriter.Write(p)
}

// Flush passes a flush through when the underlying writer supports it.
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController (Go 1.20+) the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack passes a hijack through (WebSocket and other upgrades), or answers
// http.ErrNotSupported when the underlying writer cannot.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, http.ErrNotSupported
	}
	c, rw, err := h.Hijack()
	if err == nil {
		w.hijacked = true
	}
	return c, rw, err
}

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// RateLimitOptions tune RateLimitMiddleware; zero fields take the
// defaults in brackets.
type RateLimitOptions struct {
	// Key names the bucket a request draws from [the client's IP address,
	// from RemoteAddr; put a proxy-aware function here behind a proxy].
	Key func(r *http.Request) string
	// Cost is how many tokens a request takes [1].
	Cost func(r *http.Request) uint64
}

// ClientIP is RateLimitOptions.Key's default: the host part of
// r.RemoteAddr.
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// RateLimitMiddleware limits requests per key with l. Every answer carries
// X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset (seconds
// until the bucket is full); a request over the limit gets 429 Too Many
// Requests with Retry-After (none when its cost exceeds the bucket, which
// no wait can help) and does not reach the handler.
func RateLimitMiddleware(l *KeyedLimiter, opts RateLimitOptions) func(http.Handler) http.Handler {
	key := opts.Key
	if key == nil {
		key = ClientIP
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			cost := uint64(1)
			if opts.Cost != nil {
				cost = opts.Cost(r)
			}
			d, err := l.AcquireString(key(r), cost)
			if err != nil {
				http.Error(w, "rate limiter: "+err.Error(), http.StatusInternalServerError)
				return
			}
			h := w.Header()
			h.Set("X-RateLimit-Limit", strconv.FormatUint(d.Limit, 10))
			h.Set("X-RateLimit-Remaining", strconv.FormatUint(d.Remaining, 10))
			h.Set("X-RateLimit-Reset", strconv.FormatInt(int64((d.ResetAfter+time.Second-1)/time.Second), 10))
			if !d.Allowed {
				switch d.Reason {
				case ReasonLimited:
					setRetryAfter(w, d.RetryAfter)
				case ReasonTableFull:
					setRetryAfter(w, time.Second)
				}
				http.Error(w, "rate limit exceeded", http.StatusTooManyRequests)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// BreakerOptions tune BreakerMiddleware.
type BreakerOptions struct {
	// IsFailure says which response statuses count as failures; nil: 5xx.
	IsFailure func(status int) bool
}

// BreakerMiddleware guards a handler with b: while the breaker rejects
// calls the middleware answers 503 Service Unavailable with Retry-After
// (none when forced open) without calling the handler; otherwise it runs
// the handler and records its outcome (a failure for 5xx or a panic, which
// goes on up) and duration.
func BreakerMiddleware(b *Breaker, opts BreakerOptions) func(http.Handler) http.Handler {
	isFailure := opts.IsFailure
	if isFailure == nil {
		isFailure = func(status int) bool { return status >= 500 }
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, err := b.TryAcquire()
			if err != nil {
				if !errors.Is(err, ErrRejected) { // closed, or a library failure
					http.Error(w, "circuit breaker: "+err.Error(), http.StatusInternalServerError)
					return
				}
				if d, ok := RetryAfter(err); ok {
					setRetryAfter(w, d)
				}
				http.Error(w, "circuit breaker open", http.StatusServiceUnavailable)
				return
			}
			sw := &statusWriter{ResponseWriter: w}
			start := time.Now()
			outcome := Failure // stays so if the handler panics
			defer func() { _ = b.Record(p, outcome, time.Since(start)) }()
			next.ServeHTTP(sw, r)
			if isFailure(sw.code()) {
				outcome = Failure
			} else {
				outcome = Success
			}
		})
	}
}

// IdempotencyOptions tune IdempotencyMiddleware; zero fields take the
// defaults in brackets.
type IdempotencyOptions struct {
	Header       string        // the request header with the key ["Idempotency-Key"]
	Lease        time.Duration // how long a request owns its key [1 min]
	MaxBodyBytes int64         // larger request bodies get 413 [1 MiB]
	// MaxResponseBytes: a larger response is passed on but not stored
	// (the key is released) [the store's MaxResponseLen default, 1 MiB,
	// minus room for the header].
	MaxResponseBytes int
	// Methods the middleware applies to [POST, PUT, PATCH, DELETE].
	Methods []string
	// Scope maps a request and its key to the stored key, e.g. to keep
	// clients apart ([the key as sent]).
	Scope func(r *http.Request, key string) string
	// Retryable says which response statuses are not stored: the key is
	// released so a retry runs the handler again [5xx].
	Retryable func(status int) bool
}

// ReplayedHeader is set to "true" on a response replayed from the store.
const ReplayedHeader = "Idempotent-Replayed"

// IdempotencyMiddleware makes requests carrying an Idempotency-Key header
// safe to retry. The first request with a key runs the handler; its status,
// headers and body are stored and replayed to later requests with the same
// key (with header Idempotent-Replayed: true). A request whose key is still
// being handled gets 409 Conflict with Retry-After; one that reuses a key
// for a different request (fingerprint: method, path and a SHA-256 of the
// body) gets 422 Unprocessable Entity. A retryable answer (5xx by default)
// or a panic releases the key instead of storing it. Requests without the
// header, or with another method, pass straight through.
func IdempotencyMiddleware(s *IdempotencyStore, opts IdempotencyOptions) func(http.Handler) http.Handler {
	if opts.Header == "" {
		opts.Header = "Idempotency-Key"
	}
	if opts.Lease <= 0 {
		opts.Lease = time.Minute
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	if opts.MaxResponseBytes <= 0 {
		opts.MaxResponseBytes = 1<<20 - 64<<10
	}
	if opts.Methods == nil {
		opts.Methods = []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
	}
	if opts.Retryable == nil {
		opts.Retryable = func(status int) bool { return status >= 500 }
	}
	methods := make(map[string]bool, len(opts.Methods))
	for _, m := range opts.Methods {
		methods[m] = true
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key := r.Header.Get(opts.Header)
			if key == "" || !methods[r.Method] {
				next.ServeHTTP(w, r)
				return
			}
			if opts.Scope != nil {
				key = opts.Scope(r, key)
			}
			var body []byte
			if r.Body != nil {
				limit := opts.MaxBodyBytes
				if limit < math.MaxInt64 {
					limit++ // one byte more tells "too large" from "exactly the limit"
				}
				b, err := io.ReadAll(io.LimitReader(r.Body, limit))
				if err != nil {
					http.Error(w, "cannot read request body", http.StatusBadRequest)
					return
				}
				if int64(len(b)) > opts.MaxBodyBytes {
					http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
					return
				}
				body = b
				r.Body = io.NopCloser(bytes.NewReader(body))
			}
			fp := Fingerprint(r.Method, r.URL.Path, body)
			res, err := s.begin(stringPtr(key), len(key), fp[:], opts.Lease, 0, "IdempotencyMiddleware")
			switch {
			case errors.Is(err, ErrMismatch):
				http.Error(w, "Idempotency-Key reused for a different request", http.StatusUnprocessableEntity)
				return
			case errors.Is(err, ErrFull):
				setRetryAfter(w, time.Second)
				http.Error(w, "too many requests in progress", http.StatusServiceUnavailable)
				return
			case errors.Is(err, ErrInvalidArg), errors.Is(err, ErrTooLarge):
				http.Error(w, "bad Idempotency-Key", http.StatusBadRequest)
				return
			case err != nil:
				http.Error(w, "idempotency store: "+err.Error(), http.StatusInternalServerError)
				return
			}
			switch res.State {
			case InProgress:
				setRetryAfter(w, res.RetryAfter)
				http.Error(w, "a request with this Idempotency-Key is in progress", http.StatusConflict)
				return
			case Completed:
				status, header, respBody, err := DecodeResponse(res.Response)
				if err != nil {
					http.Error(w, "idempotency store: corrupt record", http.StatusInternalServerError)
					return
				}
				h := w.Header()
				for k, v := range header {
					h[k] = v
				}
				h.Set(ReplayedHeader, "true")
				w.WriteHeader(status)
				_, _ = w.Write(respBody)
				return
			}
			// Started: run the handler, keep a copy of what it answers. Only
			// the headers the handler set are stored: those outer
			// middleware set before it (rate-limit counters, say) belong to
			// each request and are set afresh on a replay.
			token := res.Token
			before := w.Header().Clone()
			sw := &statusWriter{ResponseWriter: w, tee: true, limit: opts.MaxResponseBytes}
			finished := false
			defer func() {
				if !finished { // the handler panicked: let a retry run it
					_ = s.abandon(stringPtr(key), len(key), token, "IdempotencyMiddleware")
				}
			}()
			next.ServeHTTP(sw, r)
			finished = true
			status := sw.code()
			if sw.header == nil {
				sw.header = w.Header().Clone()
			}
			if opts.Retryable(status) || sw.overflow || sw.hijacked {
				_ = s.abandon(stringPtr(key), len(key), token, "IdempotencyMiddleware")
				return
			}
			rec := EncodeResponse(status, addedHeaders(before, sw.header), sw.body.Bytes())
			if err := s.complete(stringPtr(key), len(key), token, rec, "IdempotencyMiddleware"); err != nil {
				// Not stored (too large, or the lease ran out and another
				// request took over): release what is still ours.
				_ = s.abandon(stringPtr(key), len(key), token, "IdempotencyMiddleware")
			}
		})
	}
}

// addedHeaders returns the entries of after that are not in before with
// the same values: what a handler set.
func addedHeaders(before, after http.Header) http.Header {
	out := make(http.Header, len(after))
	for k, v := range after {
		if old, ok := before[k]; ok && equalValues(old, v) {
			continue
		}
		out[k] = v
	}
	return out
}

func equalValues(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Fingerprint identifies a request for IdempotencyMiddleware: SHA-256 of
// the method, the path and the body, each length-prefixed.
func Fingerprint(method, path string, body []byte) [32]byte {
	h := sha256.New()
	var n [8]byte
	for _, part := range [][]byte{[]byte(method), []byte(path), body} {
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// EncodeResponse serialises a response for the idempotency store:
// status (u16), header count (u32), each name and value count with
// length-prefixed (u32) strings, then the body.
func EncodeResponse(status int, header http.Header, body []byte) []byte {
	out := make([]byte, 0, 64+len(body))
	out = binary.BigEndian.AppendUint16(out, uint16(status))
	out = binary.BigEndian.AppendUint32(out, uint32(len(header)))
	for k, vs := range header {
		out = binary.BigEndian.AppendUint32(out, uint32(len(k)))
		out = append(out, k...)
		out = binary.BigEndian.AppendUint32(out, uint32(len(vs)))
		for _, v := range vs {
			out = binary.BigEndian.AppendUint32(out, uint32(len(v)))
			out = append(out, v...)
		}
	}
	return append(out, body...)
}

var errCorrupt = errors.New("resilience: corrupt stored response")

// DecodeResponse reverses EncodeResponse; it returns an error (never
// panics) for bytes it did not produce.
func DecodeResponse(rec []byte) (status int, header http.Header, body []byte, err error) {
	p := rec
	u32 := func() (uint32, bool) {
		if len(p) < 4 {
			return 0, false
		}
		v := binary.BigEndian.Uint32(p)
		p = p[4:]
		return v, true
	}
	str := func() (string, bool) {
		n, ok := u32()
		if !ok || uint64(n) > uint64(len(p)) {
			return "", false
		}
		s := string(p[:n])
		p = p[n:]
		return s, true
	}
	if len(p) < 2 {
		return 0, nil, nil, errCorrupt
	}
	status = int(binary.BigEndian.Uint16(p))
	p = p[2:]
	if status < 100 || status > 999 {
		return 0, nil, nil, errCorrupt
	}
	nh, ok := u32()
	if !ok || uint64(nh) > uint64(len(p))/8 { // each header takes at least 8 bytes
		return 0, nil, nil, errCorrupt
	}
	header = make(http.Header, nh)
	for i := uint32(0); i < nh; i++ {
		k, ok := str()
		if !ok {
			return 0, nil, nil, errCorrupt
		}
		nv, ok := u32()
		if !ok || uint64(nv) > uint64(len(p))/4 {
			return 0, nil, nil, errCorrupt
		}
		vs := make([]string, 0, nv)
		for j := uint32(0); j < nv; j++ {
			v, ok := str()
			if !ok {
				return 0, nil, nil, errCorrupt
			}
			vs = append(vs, v)
		}
		header[k] = vs
	}
	return status, header, p, nil
}
