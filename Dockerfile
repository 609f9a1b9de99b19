# The sidecar as a static binary on a minimal, non-root base image.
#   docker build -t privacy-sidecar .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# nodemo: the production binary has no demo command and no development OIDC issuer.
RUN CGO_ENABLED=0 go build -trimpath -tags nodemo -ldflags="-s -w" -o /out/privacy-sidecar ./cmd/privacy-sidecar

# distroless/static has no shell and no package manager; nonroot is uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/privacy-sidecar /usr/bin/privacy-sidecar
COPY caddyfiles/kubernetes.Caddyfile /etc/sidecar/Caddyfile
COPY policies/ /etc/sidecar/policies/
COPY registry/ /etc/sidecar/registry/
ENV XDG_CONFIG_HOME=/tmp XDG_DATA_HOME=/data
USER 65532:65532
EXPOSE 8080 9180
ENTRYPOINT ["/usr/bin/privacy-sidecar"]
CMD ["run", "--config", "/etc/sidecar/Caddyfile", "--adapter", "caddyfile"]
