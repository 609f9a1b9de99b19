// Package contacts generates the CRM contact records that the load
// harness (integration/loadbench) serves and that scope_trim's benchmarks
// trim: deterministic, realistic in shape, and the same in both places.
package contacts

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Contact is one CRM record. Field order is the JSON order. The policy
// grants id..address (and notes, redacted) to contacts:read plus
// contacts:pii; ssn, date_of_birth and tags are never granted, so the full
// chain must remove them.
type Contact struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Company     string   `json:"company"`
	OwnerID     string   `json:"owner_id"`
	CreatedAt   string   `json:"created_at"`
	Email       string   `json:"email"`
	Phone       string   `json:"phone"`
	Address     string   `json:"address"`
	Notes       string   `json:"notes"`
	SSN         string   `json:"ssn"`
	DateOfBirth string   `json:"date_of_birth"`
	Tags        []string `json:"tags"`
}

var (
	firstNames = []string{"Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Dennis", "Radia", "Linus", "Sophie", "Tim", "Hedy", "Claude"}
	lastNames  = []string{"Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton", "Ritchie", "Perlman", "Torvalds", "Wilson", "Berners-Lee", "Lamarr", "Shannon"}
	companies  = []string{"Acme Corp", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries", "Wayne Enterprises", "Tyrell", "Cyberdyne", "Soylent"}
	streets    = []string{"Main St", "Market St", "Elm Ave", "Harbour Rd", "Station Sq", "Mill Lane"}
	cities     = []string{"Springfield", "Riverton", "Lakeside", "Hill Valley", "Fairview", "Greenville"}
	sentences  = []string{
		"Met at the trade fair, interested in the enterprise plan.",
		"Prefers email over phone; do not call before 10am.",
		"Asked for a quote covering 250 seats and premium support.",
		"Renewal due next quarter, budget approved by finance.",
		"Mentioned a competitor evaluation, follow up in two weeks.",
		"Personal: recovering from surgery, reschedule the demo.",
	}
	tagSets = [][]string{{"vip"}, {"lead", "newsletter"}, {"customer"}, {"churn-risk", "support"}, {}}
)

// At is the i-th contact, the same on every run.
func At(i int) Contact {
	h := uint64(i)*0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019
	pick := func(n int) int {
		h ^= h >> 29
		h *= 0xBF58476D1CE4E5B9
		h ^= h >> 32
		return int(h % uint64(n))
	}
	first, last := firstNames[pick(len(firstNames))], lastNames[pick(len(lastNames))]
	company := companies[pick(len(companies))]
	var notes []string
	for range 1 + pick(3) {
		notes = append(notes, sentences[pick(len(sentences))])
	}
	created := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(pick(700*24)) * time.Hour)
	domain := strings.ToLower(strings.ReplaceAll(company, " ", "")) + ".example"
	return Contact{
		ID:          fmt.Sprintf("c_%07d", i),
		Name:        first + " " + last,
		Company:     company,
		OwnerID:     fmt.Sprintf("u_%03d", pick(200)),
		CreatedAt:   created.Format(time.RFC3339),
		Email:       strings.ToLower(first+"."+last) + "@" + domain,
		Phone:       fmt.Sprintf("+1-555-%03d-%04d", pick(1000), pick(10000)),
		Address:     fmt.Sprintf("%d %s, %s", 1+pick(999), streets[pick(len(streets))], cities[pick(len(cities))]),
		Notes:       strings.Join(notes, " "),
		SSN:         fmt.Sprintf("%03d-%02d-%04d", 100+pick(800), 1+pick(98), 1+pick(9998)),
		DateOfBirth: time.Date(1950+pick(50), time.Month(1+pick(12)), 1+pick(28), 0, 0, 0, 0, time.UTC).Format("2006-01-02"),
		Tags:        tagSets[pick(len(tagSets))],
	}
}

// Page is a contacts list response of at most target bytes
// (at least one contact): {"data":[...],"next_cursor":"...","total":n}.
func Page(target int) []byte {
	var items [][]byte
	size := len(`{"data":[],"next_cursor":"c_0000000","total":0000000}`)
	for i := 0; ; i++ {
		b, _ := json.Marshal(At(i))
		extra := len(b)
		if i > 0 {
			extra++ // comma
		}
		if i > 0 && size+extra > target {
			break
		}
		items = append(items, b)
		size += extra
	}
	var out []byte
	out = append(out, `{"data":[`...)
	for i, b := range items {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, b...)
	}
	out = fmt.Appendf(out, `],"next_cursor":"c_%07d","total":%d}`, len(items), len(items))
	return out
}
