// resilienced through redigo (Debian's golang-github-gomodule-redigo-dev):
// a pool, pipelining with Send/Flush/Receive, MULTI/EXEC, CL.THROTTLE,
// nil and error replies.
//
//	go run . PORT
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

func check(ok bool, what string, args ...interface{}) {
	if !ok {
		fmt.Fprintf(os.Stderr, "check failed: "+what+"\n", args...)
		os.Exit(1)
	}
}

func main() {
	addr := "127.0.0.1:" + os.Args[1]
	pool := &redis.Pool{
		MaxIdle: 4,
		Dial:    func() (redis.Conn, error) { return redis.Dial("tcp", addr) },
		TestOnBorrow: func(c redis.Conn, _ time.Time) error {
			_, err := c.Do("PING")
			return err
		},
	}
	defer pool.Close()
	c := pool.Get()
	defer c.Close()

	s, err := redis.String(c.Do("SET", "go:k", "v\x00\r\n"))
	check(err == nil && s == "OK", "SET: %v %v", s, err)
	s, err = redis.String(c.Do("GET", "go:k"))
	check(err == nil && s == "v\x00\r\n", "GET: %q %v", s, err)
	_, err = redis.String(c.Do("GET", "go:missing"))
	check(errors.Is(err, redis.ErrNil), "GET missing: %v", err)

	_, _ = c.Do("DEL", "go:n")
	for i := 0; i < 500; i++ {
		check(c.Send("INCR", "go:n") == nil, "Send")
	}
	check(c.Flush() == nil, "Flush")
	for i := 1; i <= 500; i++ {
		n, err := redis.Int(c.Receive())
		check(err == nil && n == i, "pipelined INCR %d: %d %v", i, n, err)
	}

	check(c.Send("MULTI") == nil && c.Send("SET", "{g}a", 1) == nil && c.Send("INCR", "{g}a") == nil, "queue")
	vals, err := redis.Values(c.Do("EXEC"))
	check(err == nil && len(vals) == 2, "EXEC: %v %v", vals, err)
	n, err := redis.Int(vals[1], nil)
	check(err == nil && n == 2, "EXEC INCR: %v %v", n, err)

	ints, err := redis.Ints(c.Do("CL.THROTTLE", "go:user", 2, 10, 60))
	check(err == nil && len(ints) == 5 && ints[0] == 0 && ints[1] == 3, "CL.THROTTLE: %v %v", ints, err)

	strs, err := redis.Strings(c.Do("MGET", "go:k", "go:missing"))
	check(err == nil && len(strs) == 2 && strs[0] == "v\x00\r\n" && strs[1] == "", "MGET: %q %v", strs, err)

	_, err = c.Do("INCR", "go:k")
	check(err != nil && strings.Contains(err.Error(), "not an integer"), "INCR string: %v", err)
	_, err = c.Do("NOPE")
	check(err != nil && strings.Contains(err.Error(), "unknown command"), "NOPE: %v", err)

	fmt.Println("redigo: all passed")
}
