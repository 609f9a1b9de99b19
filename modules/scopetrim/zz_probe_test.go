package scopetrim

import (
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

func TestZZProbe(t *testing.T) {
	ep, _, mask := benchSetup(t)
	doc := crmDocument(300 << 10)
	tr := &trimmer{scanner: scanner{maxDepth: 64}, mask: mask, hash: newHasher([]byte("k"))}
	full := &trimmer{scanner: scanner{maxDepth: 64}, mask: ^uint64(0)}
	var sc scanner
	sc.maxDepth = 64
	fns := map[string]func(){
		"trim":     func() { tr.out, _ = tr.trim(tr.out[:0], doc, ep.root); tr.withheldPatterns() },
		"copy-all": func() { full.out, _ = full.trim(full.out[:0], doc, ep.root) },
		"validate": func() { sc.reset(doc); sc.skip(0) },
		"gjson":    func() { gjson.ValidBytes(doc) },
	}
	best := map[string]time.Duration{}
	for r := 0; r < 300; r++ {
		for k, f := range fns {
			s := time.Now()
			f()
			d := time.Since(s)
			if b, ok := best[k]; !ok || d < b {
				best[k] = d
			}
		}
	}
	for k, v := range best {
		t.Logf("%-10s %v  %.0f MB/s", k, v, float64(len(doc))/v.Seconds()/1e6)
	}
}
