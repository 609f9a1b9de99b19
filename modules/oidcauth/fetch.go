package oidcauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// fetchBackoff is the pause between two attempts of one fetch.
const fetchBackoff = 250 * time.Millisecond

// newFetchClient returns the client for discovery and JWKS requests: its own
// transport with bounded dial and header timeouts, an overall timeout per
// request, and at most three redirects.
func newFetchClient(timeout time.Duration) *http.Client {
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{
		Transport: transport,
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("more than 3 redirects")
			}
			return nil
		},
	}
}

// fetchKeys returns the issuer's usable public keys, discovering the JWKS
// URI first unless it is configured or already known. Each request gets up
// to FetchAttempts tries.
func (ks *keySet) fetchKeys(ctx context.Context) ([]*publicKey, error) {
	ks.mu.Lock()
	jwksURI := ks.jwksURI
	ks.mu.Unlock()
	if jwksURI == "" {
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		discoveryURL := strings.TrimSuffix(ks.cfg.Issuer, "/") + "/.well-known/openid-configuration"
		body, err := ks.get(ctx, "discovery", discoveryURL, ks.cfg.MaxDiscoveryB)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			return nil, errors.New("discovery document is not JSON")
		}
		// OIDC Discovery 4.3: the document must name the same issuer.
		if doc.Issuer != ks.cfg.Issuer {
			return nil, fmt.Errorf("discovery document names issuer %q, expected %q", doc.Issuer, ks.cfg.Issuer)
		}
		if doc.JWKSURI == "" {
			return nil, errors.New("discovery document has no jwks_uri")
		}
		jwksURI = doc.JWKSURI
		ks.mu.Lock()
		ks.jwksURI = jwksURI
		ks.mu.Unlock()
	}
	body, err := ks.get(ctx, "jwks", jwksURI, ks.cfg.MaxJWKSBytes)
	if err != nil {
		return nil, err
	}
	keys, err := parseJWKS(body)
	if err != nil {
		metrics.keyFetches.WithLabelValues(ks.cfg.Issuer, "jwks", "invalid").Inc()
		return nil, err
	}
	return keys, nil
}

// get fetches url with retries and returns at most limit bytes of a 200
// JSON response; a larger body is an error, never truncated and parsed.
func (ks *keySet) get(ctx context.Context, kind, url string, limit int64) ([]byte, error) {
	var lastErr error
	for attempt := 0; attempt < ks.cfg.FetchAttempts; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, lastErr
			case <-time.After(fetchBackoff * time.Duration(attempt)):
			}
		}
		body, retry, err := ks.getOnce(ctx, url, limit)
		if err == nil {
			metrics.keyFetches.WithLabelValues(ks.cfg.Issuer, kind, "ok").Inc()
			return body, nil
		}
		metrics.keyFetches.WithLabelValues(ks.cfg.Issuer, kind, "error").Inc()
		lastErr = fmt.Errorf("%s %s: %w", kind, url, err)
		if !retry {
			break
		}
	}
	return nil, lastErr
}

func (ks *keySet) getOnce(ctx context.Context, url string, limit int64) (body []byte, retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, false, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := ks.client.Do(req)
	if err != nil {
		return nil, true, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests,
			fmt.Errorf("status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		mt, _, _ := mime.ParseMediaType(ct)
		if mt != "application/json" && mt != "application/jwk-set+json" && !strings.HasSuffix(mt, "+json") {
			return nil, false, fmt.Errorf("content type %q is not JSON", mt)
		}
	}
	if resp.ContentLength > limit {
		return nil, false, fmt.Errorf("body of %d bytes exceeds the %d-byte limit", resp.ContentLength, limit)
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, true, err
	}
	if int64(len(body)) > limit {
		return nil, false, fmt.Errorf("body exceeds the %d-byte limit", limit)
	}
	return body, false, nil
}

// parseJWKS returns the set's public signature keys. Keys it cannot use
// (symmetric, encryption-only, unknown types, malformed) are skipped rather
// than failing the whole set; a set with no usable key is an error. The
// error never quotes the body.
func parseJWKS(body []byte) ([]*publicKey, error) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, errors.New("JWKS is not a JSON object with a keys array")
	}
	var keys []*publicKey
	for _, r := range raw.Keys {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(r); err != nil {
			continue
		}
		if jwk.Use != "" && jwk.Use != "sig" {
			continue
		}
		if !jwk.IsPublic() {
			pub := jwk.Public()
			if !pub.Valid() {
				continue // symmetric key: never usable to verify
			}
			jwk = pub
		}
		if jwk.Algorithm != "" && !asymmetricAlgs[jwk.Algorithm] {
			continue
		}
		switch k := jwk.Key.(type) {
		case *rsa.PublicKey:
			// Short moduli are forgeable; huge ones make every
			// verification a CPU cost the IdP chose.
			if bits := k.N.BitLen(); bits < minRSABits || bits > maxRSABits {
				continue
			}
		case *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			continue
		}
		pk, err := newPublicKey(jwk)
		if err != nil {
			continue
		}
		keys = append(keys, pk)
		if len(keys) == maxKeys {
			break
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("JWKS holds no usable signature key")
	}
	return keys, nil
}

// The RSA modulus sizes a key may have. go-jose v4.1.9 already refuses
// moduli over 4096 bits while parsing a JWK (jwk.go, MaxRSAModulusBits,
// ErrUnsupportedKeyType), so a larger key never reaches the check above;
// maxRSABits says the same here, so that the limit stays 4096 bits if
// go-jose ever raises its own.
const (
	minRSABits = 2048
	maxRSABits = 4096
)

// maxKeys bounds how many keys of one issuer are kept; real sets hold a
// handful, and a token without kid is tried against each matching key.
const maxKeys = 64

// keyFitsAlg reports whether a public key can verify signatures of alg.
func keyFitsAlg(key any, alg string) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return k.Curve.Params().BitSize == 256
		case "ES384":
			return k.Curve.Params().BitSize == 384
		case "ES512":
			return k.Curve.Params().BitSize == 521
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// asymmetricAlgs are the only algorithms oidc_auth accepts: a symmetric
// algorithm would let anyone holding the issuer's public key bytes forge
// tokens, and "none" is no signature at all.
var asymmetricAlgs = map[string]bool{
	string(jose.RS256): true, string(jose.RS384): true, string(jose.RS512): true,
	string(jose.PS256): true, string(jose.PS384): true, string(jose.PS512): true,
	string(jose.ES256): true, string(jose.ES384): true, string(jose.ES512): true,
	string(jose.EdDSA): true,
}
