// Command manifest prints xcaddy.json as xcaddy build arguments: the Caddy
// version, then one --with module[@version][=replace] per plugin, with local
// replacements made absolute.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	data, err := os.ReadFile("xcaddy.json")
	if err != nil {
		fail(err)
	}
	var m struct {
		CaddyVersion string `json:"caddy_version"`
		Plugins      []struct {
			ModulePath string `json:"module_path"`
			Version    string `json:"version"`
			Replace    string `json:"replace"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		fail(fmt.Errorf("xcaddy.json: %w", err))
	}
	args := []string{m.CaddyVersion}
	for _, p := range m.Plugins {
		arg := p.ModulePath
		if p.Version != "" {
			arg += "@" + p.Version
		}
		if p.Replace != "" {
			repl := p.Replace
			if strings.HasPrefix(repl, ".") {
				if repl, err = filepath.Abs(repl); err != nil {
					fail(err)
				}
			}
			arg += "=" + repl
		}
		args = append(args, "--with", arg)
	}
	fmt.Println(strings.Join(args, " "))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "manifest:", err)
	os.Exit(1)
}
