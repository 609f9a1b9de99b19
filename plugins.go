// Package privacysidecar plugs every Alysio Privacy Sidecar module into
// Caddy. Import it for its side effects, as cmd/privacy-sidecar does and as
// `xcaddy build --with github.com/alysio/privacy-sidecar` does.
package privacysidecar

import (
	_ "github.com/alysio/privacy-sidecar/modules/auditlog"
	_ "github.com/alysio/privacy-sidecar/modules/connectionsadmin"
	_ "github.com/alysio/privacy-sidecar/modules/connectorauth"
	_ "github.com/alysio/privacy-sidecar/modules/oidcauth"
	_ "github.com/alysio/privacy-sidecar/modules/scopetrim"
	_ "github.com/alysio/privacy-sidecar/modules/sidecarhealth"
	_ "github.com/alysio/privacy-sidecar/modules/tenantguard"
)
