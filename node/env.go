package node

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// OtherEnv lists the POAI_ environment variables that are not
// configuration overrides: POAI_PATH (data directory), POAI_API (the API
// the query commands read), and those poai's tests and scripts set.
var OtherEnv = []string{
	"POAI_PATH", "POAI_API",
	"POAI_REQUIRE_GPU", "POAI_NETNS_TEST", "POAI_CRASH_CHILD",
	"POAI_INTEROP_DURATION", "POAI_INTEROP_LOG", "POAI_SCREENSHOT",
}

// EnvNames returns every POAI_<SECTION>_<KEY> variable ApplyEnv reads.
func EnvNames() []string {
	var names []string
	for _, k := range configKeys() {
		names = append(names, "POAI_"+strings.ToUpper(strings.Replace(k, ".", "_", 1)))
	}
	return names
}

// CheckEnv returns an error naming every POAI_ variable in environ (as
// os.Environ returns it) that poai does not read, with the closest known
// name, so a misspelt override is not silently ignored.
func CheckEnv(environ []string) error {
	known := append(EnvNames(), OtherEnv...)
	var errs []error
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "POAI_") || slices.Contains(known, name) {
			continue
		}
		msg := fmt.Sprintf("unknown variable %s", name)
		if near := closest(name, known); near != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", near)
		}
		errs = append(errs, errors.New(msg+"; unset it, or see 'poai run --help' for POAI_<SECTION>_<KEY>"))
	}
	return errors.Join(errs...)
}

// ApplyEnv overrides c with environment variables named
// POAI_<SECTION>_<KEY>, upper case (e.g. POAI_P2P_MDNS=false,
// POAI_CHALLENGE_EPOCH_LENGTH=30s, POAI_P2P_BOOTSTRAP=addr1,addr2). Lists
// are comma-separated. getenv is os.Getenv in production. It returns an
// error naming the variable for a value that does not parse.
func (c *Config) ApplyEnv(getenv func(string) string) error {
	v := reflect.ValueOf(c).Elem()
	var errs []error
	for i := range v.NumField() {
		section := v.Type().Field(i).Tag.Get("toml")
		sv := v.Field(i)
		for j := range sv.NumField() {
			key := strings.Split(sv.Type().Field(j).Tag.Get("toml"), ",")[0]
			name := "POAI_" + strings.ToUpper(section+"_"+key)
			val := getenv(name)
			if val == "" {
				continue
			}
			if err := setField(sv.Field(j), val); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", name, val, err))
			}
		}
	}
	return errors.Join(errs...)
}

func setField(f reflect.Value, val string) error {
	if u, ok := f.Addr().Interface().(interface{ UnmarshalText([]byte) error }); ok {
		return u.UnmarshalText([]byte(val))
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(val)
	case reflect.Bool:
		b, err := strconv.ParseBool(val)
		if err != nil {
			return err
		}
		f.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return err
		}
		f.SetInt(n)
	case reflect.Uint64:
		n, err := strconv.ParseUint(val, 10, 64)
		if err != nil {
			return err
		}
		f.SetUint(n)
	case reflect.Float64:
		x, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return err
		}
		f.SetFloat(x)
	case reflect.Slice:
		var items []string
		for _, s := range strings.Split(val, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
		f.Set(reflect.ValueOf(items))
	default:
		return fmt.Errorf("unsupported kind %s", f.Kind())
	}
	return nil
}
