package scopetrim

import (
	"bytes"
	"errors"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// maxZstdWindow bounds the memory a zstd frame may ask for, whatever it declares.
const maxZstdWindow = 8 << 20

// decodeBody undoes a gzip or zstd content encoding with the same size cap
// as an identity body: a small compressed body cannot expand past max. It
// returns a reason code and detail when the body cannot be decoded.
func decodeBody(encoding string, body []byte, max int64) ([]byte, string, string) {
	var r io.Reader
	switch encoding {
	case "", "identity":
		return body, "", ""
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, sidecar.ReasonUpstreamEncoding, "the upstream's gzip body is corrupt"
		}
		defer zr.Close()
		r = zr
	case "zstd":
		window := uint64(maxZstdWindow)
		if uint64(max) < window {
			window = max64(uint64(max), zstd.MinWindowSize)
		}
		zr, err := zstd.NewReader(bytes.NewReader(body),
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(window),
			zstd.WithDecoderMaxMemory(uint64(max)+1))
		if err != nil {
			return nil, sidecar.ReasonUpstreamEncoding, "the upstream's zstd body cannot be decoded"
		}
		defer zr.Close()
		r = zr
	default:
		return nil, sidecar.ReasonUpstreamEncoding, "the upstream used a content encoding other than gzip or zstd"
	}
	out, err := io.ReadAll(io.LimitReader(r, max+1))
	if int64(len(out)) > max {
		return nil, sidecar.ReasonUpstreamTooLarge, "the upstream body is larger than max_body once decoded"
	}
	if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		return nil, sidecar.ReasonUpstreamTooLarge, "the upstream's zstd body needs more memory than max_body allows"
	}
	if err != nil {
		return nil, sidecar.ReasonUpstreamEncoding, "the upstream's " + encoding + " body is corrupt"
	}
	return out, "", ""
}

func max64(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}
