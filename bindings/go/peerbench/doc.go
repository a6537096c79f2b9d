// Package peerbench holds benchmarks only: the binding beside Go peers.
package peerbench
