package main

import (
	"math/rand/v2"
	"sync/atomic"
)

// userSequenceLength is how many requests the precomputed user sequence
// holds before it repeats: more than any segment sends.
const userSequenceLength = 1 << 21

// userTraffic hands out the users' tokens in a fixed pseudo-random order in
// which user k (counting from the most active) makes a share of the
// requests proportional to 1/k^s: a Zipf law, the usual shape of per-user
// activity (a few heavy users, a long tail), with s = 0 meaning every user
// equally often. The order is computed once, from a fixed seed, and each
// configuration walks it with its own cursor, so every cache size of a run
// sees the same requests in the same order; handing out a token takes one
// atomic add.
type userTraffic struct {
	tokens  []string
	order   []uint32
	cursors []*atomic.Uint64
}

func newUserTraffic(tokens []string, s float64) *userTraffic {
	u := &userTraffic{tokens: tokens, order: make([]uint32, userSequenceLength)}
	r := rand.New(rand.NewPCG(16, 10000))
	// Ranks are shuffled onto users, so that the heaviest users are not
	// the first tokens minted.
	perm := r.Perm(len(tokens))
	if s == 0 {
		for i := range u.order {
			u.order[i] = uint32(r.IntN(len(tokens)))
		}
		return u
	}
	z := rand.NewZipf(r, s, 1, uint64(len(tokens)-1))
	for i := range u.order {
		u.order[i] = uint32(perm[z.Uint64()])
	}
	return u
}

// cursor returns a configuration's token source, from the sequence's start.
func (u *userTraffic) cursor() func() string {
	next := new(atomic.Uint64)
	u.cursors = append(u.cursors, next)
	return func() string {
		i := next.Add(1) - 1
		return u.tokens[u.order[i%uint64(len(u.order))]]
	}
}

// walked is the most tokens one cursor handed out, and how many distinct
// users they belonged to.
func (u *userTraffic) walked() (requests, users int) {
	for _, c := range u.cursors {
		requests = max(requests, int(c.Load()))
	}
	seen := make(map[uint32]struct{})
	for _, k := range u.order[:min(requests, len(u.order))] {
		seen[k] = struct{}{}
	}
	return requests, len(seen)
}
