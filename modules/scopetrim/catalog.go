package scopetrim

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
)

// ScopeInfo describes what a scope is for, in a policy file's optional
// "scopes" member: scope_trim does not use it; `privacy-sidecar audit
// report` joins it to observed traffic, so that records of processing
// (GDPR Art. 30) name the purpose and the categories of data.
type ScopeInfo struct {
	Description string   `json:"description,omitempty"`
	Categories  []string `json:"categories,omitempty"`
	Purpose     string   `json:"purpose,omitempty"`
}

// checkScopeInfo refuses metadata for a scope that no endpoint of the file
// names: a typo would describe nothing.
func checkScopeInfo(scopes map[string]ScopeInfo, known map[string]bool) error {
	names := make([]string, 0, len(scopes))
	for s := range scopes {
		names = append(names, s)
	}
	sort.Strings(names)
	for _, s := range names {
		if !known[s] {
			return fmt.Errorf("scopes: %q is described but no endpoint of this file names it", s)
		}
	}
	return nil
}

// Catalog is what reports need to know about the loaded policies.
type Catalog struct {
	// Policies by name, connector@version, as audit records name them.
	Policies map[string]*CatalogPolicy
}

// CatalogPolicy is one policy file as reports see it.
type CatalogPolicy struct {
	Connector string
	Version   string
	Scopes    map[string]ScopeInfo
	// Fields are, by endpoint path pattern and scope, the response field
	// paths the scope lets through (as written in the policy).
	Fields map[string]map[string][]string
}

// LoadCatalog reads the policies at path (a file or a directory) as
// scope_trim loads them, refusing what scope_trim would refuse.
func LoadCatalog(path string) (*Catalog, error) {
	_, files, err := loadPolicies(path, DefaultMaxDepth)
	if err != nil {
		return nil, err
	}
	c := &Catalog{Policies: map[string]*CatalogPolicy{}}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var pf policyFile
		if err := json.Unmarshal(data, &pf); err != nil {
			return nil, fmt.Errorf("policy %s: %v", f, err)
		}
		p := &CatalogPolicy{Connector: pf.Connector, Version: pf.Version, Scopes: pf.Scopes, Fields: map[string]map[string][]string{}}
		for _, ef := range pf.Endpoints {
			byScope := p.Fields[ef.Match.Path]
			if byScope == nil {
				byScope = map[string][]string{}
				p.Fields[ef.Match.Path] = byScope
			}
			for scope, fields := range ef.Fields {
				for _, fld := range fields {
					byScope[scope] = append(byScope[scope], fld.Path)
				}
			}
		}
		c.Policies[pf.Connector+"@"+pf.Version] = p
	}
	return c, nil
}
