package connectorauth

import (
	"net/http"
	"time"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// Refusal is why a request on a connection cannot be served. Its texts are
// fixed: never a token, never what an endpoint answered.
type Refusal struct {
	Status int
	Reason string
	Detail string
	// RetryAfter, when set, is sent as Retry-After.
	RetryAfter time.Duration
	// SecurityEvent is set for a request on a connection its tenant
	// disconnected: the caller is still trying to reach data it may no
	// longer have.
	SecurityEvent bool
}

func (r *Refusal) Error() string { return r.Reason + ": " + r.Detail }

func refuseDisconnected(everConnected bool) *Refusal {
	return &Refusal{
		Status: http.StatusForbidden, Reason: sidecar.ReasonConnectorDisconnected,
		Detail:        "this connector is not connected for the token's tenant",
		SecurityEvent: everConnected,
	}
}

func refuseReauthorization() *Refusal {
	return &Refusal{
		Status: http.StatusForbidden, Reason: sidecar.ReasonConnectorReauthorizationRequired,
		Detail: "the connected system no longer accepts this tenant's authorization; the tenant must connect the integration again",
	}
}

func refuseUnavailable(detail string, retryAfter time.Duration) *Refusal {
	return &Refusal{
		Status: http.StatusBadGateway, Reason: sidecar.ReasonConnectorTokenUnavailable,
		Detail: detail, RetryAfter: retryAfter,
	}
}

const (
	detailTokenEndpoint = "the connected system's token endpoint did not issue an access token; retry later"
	detailStorage       = "the connection's state could not be read from storage; retry later"
	detailUnconfirmed   = "the connection's state could not be confirmed from storage; retry later"
)
