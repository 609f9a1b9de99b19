package scopetrim

import "testing"

func BenchmarkZZTrim300(b *testing.B) {
	ep, _, mask := benchSetup(b)
	doc := crmDocument(300 << 10)
	tr := &trimmer{scanner: scanner{maxDepth: 64}, mask: mask, hash: newHasher([]byte("k"))}
	for i := 0; i < b.N; i++ {
		tr.out, _ = tr.trim(tr.out[:0], doc, ep.root)
		tr.withheldPatterns()
	}
}
