package layout

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/poai-network/poai/"

// allowed lists, for each package of the module (by its path in the
// module), the module's packages it may import directly; a trailing "/"
// allows a whole subtree. cmd/ may import anything.
var allowed = map[string][]string{
	"challenge":        {"challenge/", "gpu", "gpu/llm"},
	"challenge/merkle": {},
	"challenge/pb":     {},
	"gpu":              {},
	"gpu/cuda":         {"gpu"},
	"gpu/cuda/check":   {},
	"gpu/llm":          {"gpu"},
	"gpu/llm/llmcheat": {"gpu/llm"},
	"gpu/nvml":         {},
	"p2p":              {"internal/"},
	"scoring":          {"internal/"},
	"node":             {"challenge", "challenge/", "gpu", "gpu/", "p2p", "scoring", "internal/"},
	"node/devnet":      {"node", "challenge", "challenge/", "gpu", "gpu/", "p2p", "scoring", "internal/"},
}

// banned lists, for a package, module paths that must not be among its
// dependencies, direct or not (go list -deps; with -test, its tests' too).
var banned = []struct {
	pkg   string
	test  bool
	paths []string
	why   string
}{
	{module + "node", false, []string{"github.com/libp2p/go-libp2p/p2p/net/mock", "gonum.org/"}, "a node's binary carries no test bed or plotting library"},
	{module + "cmd/poai", false, []string{"gonum.org/"}, "the operator's binary carries no plotting library"},
	{module + "gpu/...", true, []string{module + "challenge", module + "node", module + "p2p", module + "scoring"}, "gpu knows no protocol, not even in its tests"},
}

func goList(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list %v: %v\n%s", args, err, ee.Stderr)
		}
		t.Fatalf("go list %v: %v", args, err)
	}
	return strings.Fields(string(out))
}

func permitted(rules []string, imp string) bool {
	for _, r := range rules {
		if imp == r || (strings.HasSuffix(r, "/") && strings.HasPrefix(imp, r)) {
			return true
		}
	}
	return false
}

// TestImportArrows: every package imports only what its row of allowed
// lists, every package has a row (or is a command or internal), and no
// banned dependency is reachable.
func TestImportArrows(t *testing.T) {
	for _, line := range goList(t, "-f", `{{.ImportPath}}:{{join .Imports " "}}`, module+"...") {
		_ = line
	}
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}|{{join .Imports ","}}`, module+"...").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, imports, _ := strings.Cut(line, "|")
		pkg := strings.TrimPrefix(path, module)
		if strings.HasPrefix(pkg, "cmd/") || pkg == "integration" {
			continue
		}
		rules, ok := allowed[pkg]
		if !ok && strings.HasPrefix(pkg, "internal/") {
			rules, ok = []string{"internal/"}, true
		}
		if !ok {
			t.Errorf("%s has no row in the layout: add one, with the arrows it may follow", pkg)
			continue
		}
		for _, imp := range strings.Split(imports, ",") {
			rel, ours := strings.CutPrefix(imp, module)
			if ours && !permitted(rules, rel) {
				t.Errorf("%s imports %s: not an arrow of the layout", pkg, rel)
			}
		}
	}
	for _, b := range banned {
		args := []string{"-deps"}
		if b.test {
			args = append(args, "-test")
		}
		for _, dep := range goList(t, append(args, b.pkg)...) {
			if slices.ContainsFunc(b.paths, func(p string) bool { return strings.HasPrefix(dep, p) }) {
				t.Errorf("%s depends on %s: %s", b.pkg, dep, b.why)
			}
		}
	}
}

// TestArchitectureDocNamesRealCode: every file and function the table of
// docs/architecture.md names in node/ exists, so the map stays true.
func TestArchitectureDocNamesRealCode(t *testing.T) {
	doc, err := os.ReadFile("../../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	src := map[string]string{}
	files, err := filepath.Glob("../../node/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("node sources: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src[filepath.Base(f)] = string(b)
	}
	all := strings.Join(slices.Collect(maps.Values(src)), "\n")
	rows := 0
	for _, line := range strings.Split(string(doc), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 5 || !strings.Contains(cells[2], ".go") {
			continue
		}
		rows++
		for _, f := range regexp.MustCompile("`([a-z_]+\\.go)`").FindAllStringSubmatch(cells[2], -1) {
			if _, ok := src[f[1]]; !ok {
				t.Errorf("architecture.md names node/%s, which does not exist", f[1])
			}
		}
		for _, fn := range regexp.MustCompile("`(?:([A-Za-z]+)\\.)?([A-Za-z]+)`").FindAllStringSubmatch(cells[3], -1) {
			recv, name := fn[1], fn[2]
			pat := `func \([a-z]+ \*?` + recv + `[A-Za-z]*\) ` + name + `\(`
			if recv == "" {
				pat = `func (\([a-z]+ \*?[A-Za-z]+\) )?` + name + `\(`
			}
			if !regexp.MustCompile(pat).MatchString(all) {
				t.Errorf("architecture.md names %s, not a function in node/", fn[0])
			}
		}
	}
	if rows < 5 {
		t.Fatalf("only %d rows of the challenge path found in architecture.md", rows)
	}
}
