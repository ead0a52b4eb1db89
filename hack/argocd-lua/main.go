// Command argocd-lua runs Argo CD resource customizations (health checks and resource actions)
// against their tests, in gopher-lua, the Lua VM Argo CD embeds, the way Argo CD runs them.
//
// Argo CD's own runner (util/lua in github.com/argoproj/argo-cd/v3, driven by its
// health_test.go and custom_actions_test.go) drags in ~1,400 packages; this is the part of it
// that decides what a script sees and what its answer means, on the same gopher-lua and
// gopher-json versions:
//
//   - the object is the global `obj` (decodeValue: JSON numbers as Lua numbers, null as nil);
//     actions also get the global `actionParams` (the test's `parameters`);
//   - only the package, base and table libraries are opened, plus Argo CD's "safe" os
//     (os.time and os.date, reached with require("os")): what argocd-cm scripts get in the
//     API server and the controller (`resource.customizations.useOpenLibs.<group_kind>` unset),
//     stricter than Argo CD's own health and discovery tests, which open every library;
//   - a script has one second;
//   - health: the returned table is JSON-encoded (gopher-json) into {status, message}; a status
//     Argo CD does not know becomes Unknown "Lua returned an invalid health status"; nil or {}
//     is an empty health;
//   - discovery: the returned table maps action names to {disabled, displayName, iconClass,
//     params} (or to an empty table: enabled, no more to say);
//   - actions: the returned object is cleaned as Argo CD cleans it (an empty table where the
//     input had an object becomes {} again, not []) and compared with expectedOutputPath.
//
// Scripts are picked the way Argo CD picks them: by the apiVersion and kind of the test's
// input object (<root>/<group>/<kind>/health.lua, .../actions/discovery.lua,
// .../actions/<action>/action.lua), so a testdata file of the wrong kind fails here too.
// The checks are stricter than Argo CD's tests where those are lenient: discovery must list
// exactly the expected actions (Argo CD only checks that each listed one is expected), the
// action output must equal the expected object (Argo CD's diff ignores extra fields), test files
// may not contain unknown keys, and every action needs at least one action test.
//
//	usage: argocd-lua test [-v] ROOT...           every health_test.yaml and action_test.yaml under ROOT
//	       argocd-lua bundle [-check] DIR FILE    the argocd-cm actions value for DIR/actions
//
// bundle writes FILE (or with -check, fails unless FILE is up to date): the value of the argocd-cm
// key resource.customizations.actions.<group>_<kind> (discovery.lua and every action.lua in one
// YAML document), which a configMapGenerator, the Helm chart or the ArgoCD operator can install.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
	luajson "layeh.com/gopher-json"
	"sigs.k8s.io/yaml"
)

const scriptTimeout = time.Second

func usage() {
	fmt.Fprintln(os.Stderr, "usage: argocd-lua test [-v] ROOT...")
	fmt.Fprintln(os.Stderr, "       argocd-lua bundle [-check] DIR FILE")
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "test":
		fl := flag.NewFlagSet("test", flag.ExitOnError)
		verbose := fl.Bool("v", false, "print every test, not only failures")
		_ = fl.Parse(os.Args[2:])
		if fl.NArg() == 0 {
			usage()
		}
		os.Exit(runTests(fl.Args(), *verbose))
	case "bundle":
		fl := flag.NewFlagSet("bundle", flag.ExitOnError)
		check := fl.Bool("check", false, "fail unless FILE already holds the bundle")
		_ = fl.Parse(os.Args[2:])
		if fl.NArg() != 2 {
			usage()
		}
		os.Exit(runBundle(fl.Arg(0), fl.Arg(1), *check))
	default:
		usage()
	}
}

// ---- the Lua state, as util/lua/lua.go sets it up ------------------------------------------

// safeOsFuncs are the only os functions Argo CD exposes (util/lua/oslib_safe.go, copied there
// from gopher-lua): taken from gopher-lua's own os library.
func safeOsFuncs() map[string]lua.LGFunction {
	full := lua.NewState()
	defer full.Close()
	funcs := map[string]lua.LGFunction{}
	for _, name := range []string{"time", "date"} {
		funcs[name] = full.GetField(full.GetGlobal("os"), name).(*lua.LFunction).GFunction
	}
	return funcs
}

// openSafeOs is Argo CD's OpenSafeOs, quirk included: it registers time and date in the
// `table` module, so without useOpenLibs a script reaches them only through require("os").
func openSafeOs(l *lua.LState) int {
	l.Push(l.RegisterModule(lua.TabLibName, safeOsFuncs()))
	return 1
}

func safeOsLoader(l *lua.LState) int {
	l.Push(l.SetFuncs(l.NewTable(), safeOsFuncs()))
	return 1
}

// runLua runs script with obj as `obj` and returns the state (its top is the script's answer).
func runLua(obj map[string]any, script string, params map[string]string) (*lua.LState, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	for _, lib := range []struct {
		name string
		fn   lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, openSafeOs},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.fn), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			l.Close()
			return nil, err
		}
	}
	l.PreloadModule(lua.OsLibName, safeOsLoader)
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	l.SetContext(ctx)

	actionParams := l.CreateTable(0, len(params))
	for k, v := range params {
		actionParams.RawSetH(lua.LString(k), decodeValue(l, v))
	}
	l.SetGlobal("actionParams", actionParams)
	l.SetGlobal("obj", decodeValue(l, obj))

	fn, err := l.LoadString(script)
	if err == nil {
		l.Push(fn)
		err = l.PCall(0, lua.MultRet, nil)
	}
	l.RemoveContext()
	if err != nil {
		var apiErr *lua.ApiError
		if errors.As(err, &apiErr) && apiErr.Type == lua.ApiErrorRun {
			apiErr.StackTrace = "" // Argo CD drops the stack trace from what users see
			err = apiErr
		}
		l.Close()
		return nil, err
	}
	return l, nil
}

// decodeValue is util/lua's decodeValue: Go values of an unstructured object as Lua values.
func decodeValue(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(v)
	case int:
		return lua.LNumber(v)
	case int32:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case []any:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(decodeValue(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), decodeValue(l, item))
		}
		return tbl
	}
	return lua.LNil
}

// ---- health -------------------------------------------------------------------------------

type healthStatus struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

var healthStatusCodes = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true, "Healthy": true, "Degraded": true, "Missing": true,
}

// executeHealth is ExecuteHealthLua.
func executeHealth(obj map[string]any, script string) (healthStatus, error) {
	l, err := runLua(obj, script, nil)
	if err != nil {
		return healthStatus{}, err
	}
	defer l.Close()
	ret := l.Get(-1)
	switch ret.Type() {
	case lua.LTNil:
		return healthStatus{}, nil
	case lua.LTTable:
	default:
		return healthStatus{}, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
	}
	data, err := luajson.Encode(ret)
	if err != nil {
		return healthStatus{}, err
	}
	var hs healthStatus
	if err := json.Unmarshal(data, &hs); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) { // e.g. a list: Argo CD answers an empty health
			return healthStatus{}, nil
		}
		return healthStatus{}, err
	}
	if !healthStatusCodes[hs.Status] {
		return healthStatus{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return hs, nil
}

// ---- actions ------------------------------------------------------------------------------

type resourceActionParam struct {
	Name    string `json:"name,omitempty"`
	Value   string `json:"value,omitempty"`
	Type    string `json:"type,omitempty"`
	Default string `json:"default,omitempty"`
}

// resourceAction is v1alpha1.ResourceAction, what discovery answers per action.
type resourceAction struct {
	Name        string                `json:"name,omitempty"`
	Params      []resourceActionParam `json:"params,omitempty"`
	Disabled    bool                  `json:"disabled,omitempty"`
	IconClass   string                `json:"iconClass,omitempty"`
	DisplayName string                `json:"displayName,omitempty"`
}

// executeDiscovery is ExecuteResourceActionDiscovery for one script.
func executeDiscovery(obj map[string]any, script string) ([]resourceAction, error) {
	l, err := runLua(obj, script, nil)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	ret := l.Get(-1)
	if ret.Type() != lua.LTTable {
		return nil, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
	}
	data, err := luajson.Encode(ret)
	if err != nil {
		return nil, fmt.Errorf("error in converting to lua table: %w", err)
	}
	if string(data) == "[]" {
		return nil, nil
	}
	actionsMap := map[string]any{}
	if err := json.Unmarshal(data, &actionsMap); err != nil {
		return nil, fmt.Errorf("error unmarshaling action table: %w", err)
	}
	var out []resourceAction
	for name, value := range actionsMap {
		action := resourceAction{Name: name}
		if fields, ok := value.(map[string]any); ok {
			if disabled, ok := fields["disabled"].(bool); ok {
				action.Disabled = disabled
			}
			raw, err := json.Marshal(value)
			if err != nil {
				return nil, fmt.Errorf("error marshaling resource action: %w", err)
			}
			if err := json.Unmarshal(raw, &action); err != nil {
				return nil, fmt.Errorf("error unmarshaling resource action: %w", err)
			}
		}
		out = append(out, action)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// executeAction is ExecuteResourceAction for actions that return the (modified) object.
func executeAction(obj map[string]any, script string, params map[string]string) (map[string]any, error) {
	l, err := runLua(obj, script, params)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	ret := l.Get(-1)
	if ret.Type() != lua.LTTable {
		return nil, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
	}
	data, err := luajson.Encode(ret)
	if err != nil {
		return nil, err
	}
	if len(data) < 2 {
		return nil, errors.New("Lua output was not a valid json object or array")
	}
	if data[0] == '[' {
		return nil, errors.New("the action returned a list (Argo CD's impacted-resources form): " +
			"this runner only checks actions that return obj")
	}
	newObj := map[string]any{}
	if err := json.Unmarshal(data, &newObj); err != nil {
		return nil, err
	}
	return cleanReturnedObj(newObj, obj), nil
}

// cleanReturnedObj is util/lua's: gopher-json encodes an empty table as [], so where the input
// had an object, an empty [] in the output is turned back into {}.
func cleanReturnedObj(newObj, obj map[string]any) map[string]any {
	for key, oldValue := range obj {
		newValue, ok := newObj[key]
		if !ok {
			continue
		}
		switch nv := newValue.(type) {
		case map[string]any:
			if ov, ok := oldValue.(map[string]any); ok {
				newObj[key] = cleanReturnedObj(nv, ov)
			}
		case []any:
			switch ov := oldValue.(type) {
			case map[string]any:
				if len(nv) == 0 {
					newObj[key] = map[string]any{}
				}
			case []any:
				newObj[key] = cleanReturnedArray(nv, ov)
			}
		}
	}
	return newObj
}

func cleanReturnedArray(newArr, arr []any) []any {
	for i := range newArr {
		if i >= len(arr) {
			break
		}
		switch nv := newArr[i].(type) {
		case map[string]any:
			if ov, ok := arr[i].(map[string]any); ok {
				newArr[i] = cleanReturnedObj(nv, ov)
			}
		case []any:
			if ov, ok := arr[i].([]any); ok {
				newArr[i] = cleanReturnedArray(nv, ov)
			}
		}
	}
	return newArr
}

// ---- the test files (Argo CD's format) ----------------------------------------------------

type healthTests struct {
	Tests []struct {
		InputPath    string       `json:"inputPath"`
		HealthStatus healthStatus `json:"healthStatus"`
	} `json:"tests"`
}

type actionTests struct {
	DiscoveryTests []struct {
		InputPath string           `json:"inputPath"`
		Result    []resourceAction `json:"result"`
	} `json:"discoveryTests"`
	ActionTests []struct {
		Action               string            `json:"action"`
		InputPath            string            `json:"inputPath"`
		ExpectedOutputPath   string            `json:"expectedOutputPath"`
		ExpectedErrorMessage string            `json:"expectedErrorMessage"`
		Parameters           map[string]string `json:"parameters"`
	} `json:"actionTests"`
}

func readYAML(path string, into any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// readObject reads a testdata object as Argo CD's tests do (YAML -> JSON -> map, numbers float64).
func readObject(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	obj := map[string]any{}
	if err := yaml.Unmarshal(data, &obj); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return obj, nil
}

// configMapKey is GetConfigMapKey: "<group>/<kind>", or "<kind>" for the core group.
func configMapKey(obj map[string]any) (string, error) {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	if apiVersion == "" || kind == "" {
		return "", errors.New("the object has no apiVersion or kind")
	}
	group := ""
	if i := strings.LastIndex(apiVersion, "/"); i >= 0 {
		group = apiVersion[:i]
	}
	if group == "" {
		return kind, nil
	}
	return group + "/" + kind, nil
}

// ---- test -------------------------------------------------------------------------------

type runner struct {
	root     string
	verbose  bool
	failures int
	counts   map[string]int
}

func (r *runner) report(kind, name string, err error) {
	r.counts[kind]++
	if err != nil {
		r.failures++
		fmt.Printf("FAIL %s %s\n     %s\n", kind, name, strings.ReplaceAll(err.Error(), "\n", "\n     "))
	} else if r.verbose {
		fmt.Printf("ok   %s %s\n", kind, name)
	}
}

// scriptFor reads <root>/<key>/<rel>, where key comes from the object, and checks that this is
// the directory the test lives in (Argo CD would run another kind's scripts on it otherwise).
func (r *runner) scriptFor(obj map[string]any, testDir, keyDir, rel string) (string, error) {
	key, err := configMapKey(obj)
	if err != nil {
		return "", err
	}
	want := filepath.Join(r.root, filepath.FromSlash(key), keyDir)
	if filepath.Clean(testDir) != filepath.Clean(want) {
		return "", fmt.Errorf("the input is a %s: Argo CD runs %s on it, not the scripts next to this test", key,
			filepath.Join(want, rel))
	}
	data, err := os.ReadFile(filepath.Join(want, rel))
	return string(data), err
}

func (r *runner) name(dir, file string) string {
	rel, err := filepath.Rel(r.root, filepath.Join(dir, file))
	if err != nil {
		return filepath.Join(dir, file)
	}
	return filepath.ToSlash(rel)
}

func (r *runner) health(dir string) {
	var tests healthTests
	if err := readYAML(filepath.Join(dir, "health_test.yaml"), &tests); err != nil {
		r.report("health", r.name(dir, "health_test.yaml"), err)
		return
	}
	if len(tests.Tests) == 0 {
		r.report("health", r.name(dir, "health_test.yaml"), errors.New("no tests"))
	}
	for _, t := range tests.Tests {
		r.report("health", r.name(dir, t.InputPath), func() error {
			obj, err := readObject(filepath.Join(dir, t.InputPath))
			if err != nil {
				return err
			}
			script, err := r.scriptFor(obj, dir, "", "health.lua")
			if err != nil {
				return err
			}
			got, err := executeHealth(obj, script)
			if err != nil {
				return fmt.Errorf("health.lua: %w", err)
			}
			if got != t.HealthStatus {
				return fmt.Errorf("expected status %q message %q\ngot      status %q message %q",
					t.HealthStatus.Status, t.HealthStatus.Message, got.Status, got.Message)
			}
			return nil
		}())
	}
}

func describeAction(a resourceAction) string {
	data, _ := json.Marshal(a)
	return string(data)
}

func (r *runner) actions(dir string) {
	var tests actionTests
	if err := readYAML(filepath.Join(dir, "action_test.yaml"), &tests); err != nil {
		r.report("actions", r.name(dir, "action_test.yaml"), err)
		return
	}
	for _, t := range tests.DiscoveryTests {
		r.report("discovery", r.name(dir, t.InputPath), func() error {
			obj, err := readObject(filepath.Join(dir, t.InputPath))
			if err != nil {
				return err
			}
			script, err := r.scriptFor(obj, dir, "actions", "discovery.lua")
			if err != nil {
				return err
			}
			got, err := executeDiscovery(obj, script)
			if err != nil {
				return fmt.Errorf("discovery.lua: %w", err)
			}
			expected := map[string]resourceAction{}
			for _, a := range t.Result {
				if _, dup := expected[a.Name]; dup {
					return fmt.Errorf("action %q is expected twice", a.Name)
				}
				expected[a.Name] = a
			}
			var problems []string
			seen := map[string]bool{}
			for _, a := range got {
				seen[a.Name] = true
				want, ok := expected[a.Name]
				switch {
				case !ok:
					problems = append(problems, "unexpected action "+describeAction(a))
				case !reflect.DeepEqual(want, a):
					problems = append(problems, fmt.Sprintf("action %s: expected %s, got %s", a.Name, describeAction(want), describeAction(a)))
				}
			}
			for _, a := range t.Result {
				if !seen[a.Name] {
					problems = append(problems, "missing action "+describeAction(a))
				}
			}
			if len(problems) > 0 {
				return errors.New(strings.Join(problems, "\n"))
			}
			return nil
		}())
	}

	tested := map[string]bool{}
	for _, t := range tests.ActionTests {
		tested[t.Action] = true
		r.report("action", t.Action+" "+r.name(dir, t.InputPath), func() error {
			obj, err := readObject(filepath.Join(dir, t.InputPath))
			if err != nil {
				return err
			}
			script, err := r.scriptFor(obj, dir, "actions", filepath.Join(t.Action, "action.lua"))
			if err != nil {
				return err
			}
			got, err := executeAction(obj, script, t.Parameters)
			if t.ExpectedErrorMessage != "" {
				if err == nil || err.Error() != t.ExpectedErrorMessage {
					return fmt.Errorf("expected the error %q, got %v", t.ExpectedErrorMessage, err)
				}
				return nil
			}
			if err != nil {
				return fmt.Errorf("%s/action.lua: %w", t.Action, err)
			}
			if t.ExpectedOutputPath == "" {
				return errors.New("the test has neither expectedOutputPath nor expectedErrorMessage")
			}
			want, err := readObject(filepath.Join(dir, t.ExpectedOutputPath))
			if err != nil {
				return err
			}
			if diffs := diff("", normalise(want), normalise(got)); len(diffs) > 0 {
				return fmt.Errorf("the result differs from %s:\n%s", t.ExpectedOutputPath, strings.Join(diffs, "\n"))
			}
			return nil
		}())
	}

	// Every action directory needs a test.
	entries, err := os.ReadDir(dir)
	if err != nil {
		r.report("actions", r.name(dir, ""), err)
		return
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "action.lua")); err != nil {
			continue
		}
		if !tested[e.Name()] {
			r.report("action", e.Name(), fmt.Errorf("%s has no entry in actionTests", r.name(dir, filepath.Join(e.Name(), "action.lua"))))
		}
	}
}

// normalise turns an object into plain JSON values, as both sides are compared.
func normalise(v any) any {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("<unencodable: %v>", err)
	}
	var out any
	_ = json.Unmarshal(data, &out)
	return out
}

func show(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(data)
}

// diff lists, path by path, where got differs from want.
func diff(path string, want, got any) []string {
	at := path
	if at == "" {
		at = "(the object)"
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: expected %s, got %s", at, show(want), show(got))}
		}
		keys := map[string]bool{}
		for k := range w {
			keys[k] = true
		}
		for k := range g {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		var out []string
		for _, k := range sorted {
			sub := k
			if path != "" {
				sub = path + "." + k
			}
			wv, inW := w[k]
			gv, inG := g[k]
			switch {
			case !inG:
				out = append(out, fmt.Sprintf("%s: expected %s, missing", sub, show(wv)))
			case !inW:
				out = append(out, fmt.Sprintf("%s: not expected, got %s", sub, show(gv)))
			default:
				out = append(out, diff(sub, wv, gv)...)
			}
		}
		return out
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s: expected %s, got %s", at, show(want), show(got))}
		}
		var out []string
		for i := range w {
			out = append(out, diff(fmt.Sprintf("%s[%d]", path, i), w[i], g[i])...)
		}
		return out
	}
	if !reflect.DeepEqual(want, got) {
		return []string{fmt.Sprintf("%s: expected %s, got %s", at, show(want), show(got))}
	}
	return nil
}

func luaVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == "github.com/yuin/gopher-lua" {
				return "gopher-lua " + dep.Version
			}
		}
	}
	return "gopher-lua"
}

func runTests(roots []string, verbose bool) int {
	failures := 0
	for _, root := range roots {
		r := &runner{root: filepath.Clean(root), verbose: verbose, counts: map[string]int{}}
		found := 0
		err := filepath.WalkDir(r.root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			dir := filepath.Dir(path)
			switch d.Name() {
			case "health.lua":
				found++
				r.health(dir)
			case "discovery.lua":
				found++
				if _, err := os.Stat(filepath.Join(dir, "action_test.yaml")); err != nil {
					r.report("actions", r.name(dir, "action_test.yaml"), errors.New("discovery.lua has no action_test.yaml"))
				} else {
					r.actions(dir)
				}
			}
			return nil
		})
		if err != nil {
			fmt.Printf("FAIL %s: %v\n", root, err)
			r.failures++
		} else if found == 0 {
			fmt.Printf("FAIL %s: no health.lua or actions/discovery.lua below it\n", root)
			r.failures++
		}
		total := 0
		for _, n := range r.counts {
			total += n
		}
		status := "ok"
		if r.failures > 0 {
			status = fmt.Sprintf("FAILED (%d of %d)", r.failures, total)
		}
		fmt.Printf("argocd-lua (%s): %s: %d health, %d discovery, %d action tests: %s\n",
			luaVersion(), root, r.counts["health"], r.counts["discovery"], r.counts["action"], status)
		failures += r.failures
	}
	if failures > 0 {
		return 1
	}
	return 0
}

// ---- bundle -----------------------------------------------------------------------------

// resourceActions is v1alpha1.ResourceActions, the value of resource.customizations.actions.*.
type resourceActions struct {
	ActionDiscoveryLua  string                     `json:"discovery.lua,omitempty"`
	Definitions         []resourceActionDefinition `json:"definitions,omitempty"`
	MergeBuiltinActions bool                       `json:"mergeBuiltinActions,omitempty"`
}

type resourceActionDefinition struct {
	Name      string `json:"name"`
	ActionLua string `json:"action.lua"`
}

// literal writes text as a YAML literal block scalar indented by indent spaces.
func literal(buf *bytes.Buffer, text string, indent int) error {
	if !strings.HasSuffix(text, "\n") || strings.HasSuffix(text, "\n\n") {
		return errors.New("must end with exactly one newline")
	}
	if strings.HasPrefix(text, " ") || strings.HasPrefix(text, "\t") {
		return errors.New("must not start with white space")
	}
	pad := strings.Repeat(" ", indent)
	buf.WriteString("|\n")
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if strings.TrimRight(line, " \t") != line {
			return fmt.Errorf("trailing white space in %q", line)
		}
		if line != "" {
			buf.WriteString(pad)
			buf.WriteString(line)
		}
		buf.WriteString("\n")
	}
	return nil
}

func bundle(dir string) ([]byte, resourceActions, error) {
	var want resourceActions
	actionsDir := filepath.Join(dir, "actions")
	discovery, err := os.ReadFile(filepath.Join(actionsDir, "discovery.lua"))
	if err != nil {
		return nil, want, err
	}
	want.ActionDiscoveryLua = string(discovery)
	entries, err := os.ReadDir(actionsDir)
	if err != nil {
		return nil, want, err
	}
	for _, e := range entries { // ReadDir sorts by name
		if !e.IsDir() {
			continue
		}
		script, err := os.ReadFile(filepath.Join(actionsDir, e.Name(), "action.lua"))
		if errors.Is(err, fs.ErrNotExist) {
			continue // testdata/
		}
		if err != nil {
			return nil, want, err
		}
		want.Definitions = append(want.Definitions, resourceActionDefinition{Name: e.Name(), ActionLua: string(script)})
	}
	if len(want.Definitions) == 0 {
		return nil, want, fmt.Errorf("%s: no actions/<name>/action.lua", dir)
	}

	var buf bytes.Buffer
	clean := filepath.Clean(dir)
	groupKind := filepath.Base(filepath.Dir(clean)) + "_" + filepath.Base(clean)
	fmt.Fprintf(&buf, "# The argocd-cm value resource.customizations.actions.%s: the scripts in\n", groupKind)
	fmt.Fprintf(&buf, "# %s/actions (tested there).\n", filepath.ToSlash(clean))
	buf.WriteString("# Generated by `make argocd-lua-bundle`: do not edit.\n")
	buf.WriteString("discovery.lua: ")
	if err := literal(&buf, want.ActionDiscoveryLua, 2); err != nil {
		return nil, want, fmt.Errorf("discovery.lua: %w", err)
	}
	buf.WriteString("definitions:\n")
	for _, d := range want.Definitions {
		fmt.Fprintf(&buf, "  - name: %s\n    action.lua: ", d.Name)
		if err := literal(&buf, d.ActionLua, 6); err != nil {
			return nil, want, fmt.Errorf("%s/action.lua: %w", d.Name, err)
		}
	}
	return buf.Bytes(), want, nil
}

func runBundle(dir, file string, check bool) int {
	data, want, err := bundle(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "argocd-lua bundle: %v\n", err)
		return 1
	}
	// Read back as Argo CD reads the value (ResourceOverride.GetActions).
	var parsed resourceActions
	if err := yaml.UnmarshalStrict(data, &parsed); err != nil || !reflect.DeepEqual(parsed, want) {
		fmt.Fprintf(os.Stderr, "argocd-lua bundle: the generated YAML does not read back as the scripts (%v)\n", err)
		return 1
	}
	if check {
		current, err := os.ReadFile(file)
		if err != nil || !bytes.Equal(current, data) {
			fmt.Fprintf(os.Stderr, "argocd-lua bundle: %s is not what %s/actions holds: run `make argocd-lua-bundle`\n", file, dir)
			return 1
		}
		fmt.Printf("argocd-lua bundle: %s is up to date (%d actions)\n", file, len(want.Definitions))
		return 0
	}
	if err := os.WriteFile(file, data, 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "argocd-lua bundle: %v\n", err)
		return 1
	}
	fmt.Printf("argocd-lua bundle: wrote %s (%d actions)\n", file, len(want.Definitions))
	return 0
}
