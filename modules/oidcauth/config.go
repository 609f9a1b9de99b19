package oidcauth

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// setIssuerDefaults fills the key settings left at zero.
func setIssuerDefaults(ic *Issuer) {
	if ic.RefreshInterval == 0 {
		ic.RefreshInterval = caddy.Duration(defaultRefreshInterval)
	}
	if ic.MinRefreshInterval == 0 {
		ic.MinRefreshInterval = caddy.Duration(defaultMinRefresh)
	}
	if ic.FetchTimeout == 0 {
		ic.FetchTimeout = caddy.Duration(defaultFetchTimeout)
	}
	if ic.FetchAttempts == 0 {
		ic.FetchAttempts = defaultFetchAttempts
	}
	if ic.MaxJWKSSize == 0 {
		ic.MaxJWKSSize = defaultMaxJWKSBytes
	}
	if ic.MaxDiscoverySize == 0 {
		ic.MaxDiscoverySize = defaultMaxDiscoveryB
	}
}

// provisionIssuer takes the issuer's key set from the usage pool.
func (m *OIDCAuth) provisionIssuer(ic *Issuer) error {
	kc := keySetConfig{
		Issuer:          ic.Issuer,
		JWKSURI:         ic.JWKSURI,
		RefreshInterval: time.Duration(ic.RefreshInterval),
		MinRefresh:      time.Duration(ic.MinRefreshInterval),
		FetchTimeout:    time.Duration(ic.FetchTimeout),
		FetchAttempts:   ic.FetchAttempts,
		MaxJWKSBytes:    ic.MaxJWKSSize,
		MaxDiscoveryB:   ic.MaxDiscoverySize,
	}
	key := kc.poolKey()
	logger := m.logger
	val, _, err := keySets.LoadOrNew(key, func() (caddy.Destructor, error) {
		return newKeySet(kc, logger.Named("keys")), nil
	})
	if err != nil {
		return fmt.Errorf("key set for issuer %q: %w", ic.Issuer, err)
	}
	m.issuers[ic.Issuer] = &issuer{cfg: ic, audiences: ic.Audiences, keys: val.(*keySet), poolKey: key}
	return nil
}

// checkAlgorithm refuses anything but the asymmetric JWS algorithms.
func checkAlgorithm(a string) error {
	if asymmetricAlgs[a] {
		return nil
	}
	if strings.EqualFold(a, "none") || strings.HasPrefix(strings.ToUpper(a), "HS") {
		return fmt.Errorf("algorithm %q is not allowed: only asymmetric algorithms (RS*, PS*, ES*, EdDSA) can prove who signed a token", a)
	}
	return fmt.Errorf("unknown algorithm %q; use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512 or EdDSA", a)
}

// validateIssuer refuses an issuer that could not be verified safely.
func validateIssuer(ic *Issuer) error {
	u, err := url.Parse(ic.Issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("issuer %q must be an absolute http(s) URL without query or fragment", ic.Issuer)
	}
	if len(ic.Audiences) == 0 || slices.Contains(ic.Audiences, "") {
		return fmt.Errorf("issuer %q has no audience; add `audience <your-api>` to its block (an empty audience would accept tokens meant for any service)", ic.Issuer)
	}
	if ic.JWKSURI != "" {
		if u, err := url.Parse(ic.JWKSURI); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("jwks_uri %q of issuer %q must be an absolute http(s) URL", ic.JWKSURI, ic.Issuer)
		}
	}
	if ic.RefreshInterval < 0 || ic.MinRefreshInterval < 0 || ic.FetchTimeout < 0 || ic.FetchAttempts < 0 || ic.MaxJWKSSize < 0 || ic.MaxDiscoverySize < 0 {
		return fmt.Errorf("issuer %q has a negative key setting", ic.Issuer)
	}
	return nil
}

// checkForwardHeader refuses header names that are invalid or that would
// overwrite protocol headers.
func checkForwardHeader(name, claim string) error {
	if name == "" || claim == "" {
		return errors.New("forward_header needs a header name and a claim path")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("forward_header name %q is not a valid header name", name)
		}
	}
	switch sidecar.FoldHeaderName(name) {
	case "authorization", "host", "connection", "content-length", "transfer-encoding", "cookie", "te", "upgrade", "proxy-authorization":
		return fmt.Errorf("forward_header %q would overwrite a protocol header; choose another name", name)
	}
	return nil
}
