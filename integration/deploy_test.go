package integration

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const k8sDir = "deploy/kubernetes"

type kustomization struct {
	Resources          []string `yaml:"resources"`
	ConfigMapGenerator []struct {
		Name  string   `yaml:"name"`
		Files []string `yaml:"files"`
	} `yaml:"configMapGenerator"`
}

type container struct {
	Name  string   `yaml:"name"`
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	VolumeMounts   []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

type podController struct {
	Kind string `yaml:"kind"`
	Spec struct {
		Template struct {
			Spec struct {
				Containers []container `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// TestKubernetesManifests checks deploy/kubernetes against what it deploys:
// every file it names exists, the sidecar container exposes exactly the
// ports its Caddyfile listens on, the probes hit paths the Caddyfile serves,
// every variable the Caddyfile reads is set, and the admin API is bound to
// localhost.
func TestKubernetesManifests(t *testing.T) {
	var kz kustomization
	readYAML(t, filepath.Join(k8sDir, "kustomization.yaml"), &kz)
	var caddyfile string
	for _, res := range kz.Resources {
		mustExist(t, filepath.Join(k8sDir, res))
	}
	for _, gen := range kz.ConfigMapGenerator {
		for _, f := range gen.Files {
			_, src, _ := strings.Cut(f, "=")
			mustExist(t, filepath.Join(k8sDir, src))
			if strings.HasPrefix(f, "Caddyfile=") {
				caddyfile = filepath.Join(k8sDir, src)
			}
		}
	}
	if caddyfile == "" {
		t.Fatal("no ConfigMap carries the Caddyfile")
	}

	var sts podController
	readYAML(t, filepath.Join(k8sDir, "statefulset.yaml"), &sts)
	i := slices.IndexFunc(sts.Spec.Template.Spec.Containers, func(c container) bool { return c.Name == "privacy-sidecar" })
	if i < 0 {
		t.Fatal("no privacy-sidecar container")
	}
	sc := sts.Spec.Template.Spec.Containers[i]
	env := map[string]string{}
	for _, e := range sc.Env {
		env[e.Name] = e.Value
	}

	cfg := adaptFile(t, caddyfile, map[string]string{"POLICY_DIR": "policies", "REGISTRY_DIR": "registry", "AUDIT_DIR": t.TempDir()})
	listened := map[string]string{} // port -> server JSON
	for _, srv := range cfg.Apps.HTTP.Servers {
		raw, _ := json.Marshal(srv)
		for _, l := range srv.Listen {
			listened[l[strings.LastIndex(l, ":")+1:]] = string(raw)
		}
	}
	var exposed []string
	portByName := map[string]string{}
	for _, p := range sc.Ports {
		exposed = append(exposed, itoa(p.ContainerPort))
		portByName[p.Name] = itoa(p.ContainerPort)
	}
	for port := range listened {
		if !slices.Contains(exposed, port) {
			t.Errorf("the Caddyfile listens on %s but the container does not expose it", port)
		}
	}
	for _, port := range exposed {
		if _, ok := listened[port]; !ok {
			t.Errorf("the container exposes %s but the Caddyfile does not listen on it", port)
		}
	}
	for name, pr := range map[string]*probe{"readiness": sc.ReadinessProbe, "liveness": sc.LivenessProbe} {
		if pr == nil {
			t.Errorf("no %s probe", name)
			continue
		}
		srv, ok := listened[portByName[pr.HTTPGet.Port]]
		if !ok || !strings.Contains(srv, `"`+pr.HTTPGet.Path+`"`) {
			t.Errorf("the %s probe's %s on port %q is not served by the Caddyfile", name, pr.HTTPGet.Path, pr.HTTPGet.Port)
		}
	}
	if !strings.Contains(listened[portByName[sc.ReadinessProbe.HTTPGet.Port]], `"sidecar_health"`) {
		t.Error("the readiness probe does not reach sidecar_health")
	}
	if !strings.HasPrefix(cfg.Admin.Listen, "localhost:") && !strings.HasPrefix(cfg.Admin.Listen, "127.0.0.1:") {
		t.Errorf("the admin API listens on %q; bind it to localhost", cfg.Admin.Listen)
	}
	for _, v := range caddyfileVars(t, caddyfile) {
		if _, ok := env[v.name]; !ok && !v.hasDefault {
			t.Errorf("the Caddyfile reads %s, which the container's env does not set", v.name)
		}
	}
	mounts := map[string]bool{}
	for _, m := range sc.VolumeMounts {
		mounts[m.MountPath] = true
	}
	if cfgPath := sc.Args[slices.Index(sc.Args, "--config")+1]; !mounts[cfgPath] {
		t.Errorf("--config %s is not a mounted path", cfgPath)
	}
	for _, dir := range []string{env["POLICY_DIR"], env["REGISTRY_DIR"], env["AUDIT_DIR"]} {
		if !mounts[dir] {
			t.Errorf("%s is not a mounted volume", dir)
		}
	}
}

// TestDockerfile checks that the image copies files that exist, builds a
// static binary and runs it as a non-root user.
func TestDockerfile(t *testing.T) {
	f, err := os.Open(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var user string
	static := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		switch fields[0] {
		case "COPY":
			if strings.HasPrefix(fields[1], "--from=") || fields[1] == "." {
				continue
			}
			for _, src := range fields[1 : len(fields)-1] {
				mustExist(t, src)
			}
		case "USER":
			user = fields[1]
		case "RUN":
			static = static || strings.Contains(sc.Text(), "CGO_ENABLED=0")
		}
	}
	if user == "" || strings.HasPrefix(user, "0") || strings.HasPrefix(user, "root") {
		t.Errorf("the image runs as %q; run it as a non-root user", user)
	}
	if !static {
		t.Error("the binary is not built with CGO_ENABLED=0 (static)")
	}
}

type adapted struct {
	Admin struct {
		Listen string `json:"listen"`
	} `json:"admin"`
	Apps struct {
		HTTP struct {
			Servers map[string]struct {
				Listen []string `json:"listen"`
				Routes any      `json:"routes"`
			} `json:"servers"`
		} `json:"http"`
	} `json:"apps"`
}

func adaptFile(t *testing.T, path string, env map[string]string) adapted {
	t.Helper()
	cmd := exec.Command(sidecarBin, "adapt", "--config", path, "--adapter", "caddyfile")
	cmd.Dir = repoRoot
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("adapting %s: %v", path, err)
	}
	var cfg adapted
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

type caddyfileVar struct {
	name       string
	hasDefault bool
}

// caddyfileVars lists the {$VAR} and {env.VAR} a Caddyfile reads.
func caddyfileVars(t *testing.T, path string) []caddyfileVar {
	src, err := os.ReadFile(filepath.Join(repoRoot, path))
	if err != nil {
		t.Fatal(err)
	}
	var vars []caddyfileVar
	for _, m := range regexp.MustCompile(`\{\$([A-Za-z0-9_]+)(:[^}]*)?\}|\{env\.([A-Za-z0-9_]+)\}`).FindAllStringSubmatch(string(src), -1) {
		if m[1] != "" {
			vars = append(vars, caddyfileVar{m[1], m[2] != ""})
		} else {
			vars = append(vars, caddyfileVar{m[3], false})
		}
	}
	return vars
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, path))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func mustExist(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(repoRoot, path)); err != nil {
		t.Errorf("%s is referenced but missing: %v", path, err)
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
