package scopetrim

import (
	"reflect"
	"strconv"
	"strings"
	"unsafe"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"github.com/tidwall/gjson"
)

// jsonObject is a CEL map over the bytes of one JSON object, so that a rule
// reading record.owner_id costs one lookup in the record's bytes (in the
// members the trimmer noted, for a record it walked; otherwise with gjson)
// instead of decoding the record into a map first. The bytes must have been
// validated by the scanner (gjson does not validate: it reads the first of
// two equal keys, which the scanner refuses), and they must outlive the
// evaluation. Values are converted as a rule reads them: strings to string,
// integers that fit to int and other numbers to double, true and false to
// bool, null to null, objects to jsonObject, arrays to a list.
type jsonObject struct {
	raw []byte
	// members are raw's members, when raw is a record the trimmer walked;
	// see recordMembers. lastKey and lastVal are the member read last:
	// rules often read one member twice (record.owner_id == claims.x ||
	// record.owner_id in claims.team).
	members *recordMembers
	lastKey string
	lastVal ref.Val
}

// view is raw as a string without a copy, for gjson. Nothing read through it
// is kept: jsonValue copies the strings it returns.
func (o *jsonObject) view() string { return unsafeString(o.raw) }

// unsafeString is b as a string without a copy; b must not change while
// the string is in use.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// lookup returns the member named key.
func (o *jsonObject) lookup(key string) gjson.Result {
	if key == "" { // gjson has no path for the empty key
		var found gjson.Result
		gjson.Parse(o.view()).ForEach(func(k, v gjson.Result) bool {
			if k.Str == "" {
				found = v
				return false
			}
			return true
		})
		return found
	}
	return gjson.Get(o.view(), gjson.Escape(key))
}

// Find implements traits.Mapper.
func (o *jsonObject) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return nil, false
	}
	if o.members != nil {
		if o.lastVal != nil && o.lastKey == string(k) {
			return o.lastVal, true
		}
		raw, found := o.members.find(o.raw, string(k))
		if !found {
			return nil, false
		}
		o.lastKey, o.lastVal = string(k), memberValue(raw)
		return o.lastVal, true
	}
	res := o.lookup(string(k))
	if !res.Exists() {
		return nil, false
	}
	return resultValue(res), true
}

// Get implements traits.Indexer.
func (o *jsonObject) Get(key ref.Val) ref.Val {
	v, found := o.Find(key)
	if !found {
		return types.NewErr("no such key: %v", key)
	}
	return v
}

// Contains implements traits.Container.
func (o *jsonObject) Contains(key ref.Val) ref.Val {
	_, found := o.Find(key)
	return types.Bool(found)
}

// Size implements traits.Sizer.
func (o *jsonObject) Size() ref.Val {
	n := 0
	gjson.Parse(o.view()).ForEach(func(_, _ gjson.Result) bool {
		n++
		return true
	})
	return types.Int(n)
}

// Iterator implements traits.Iterable: the keys, in document order.
func (o *jsonObject) Iterator() traits.Iterator {
	var keys []string
	gjson.Parse(o.view()).ForEach(func(k, _ gjson.Result) bool {
		keys = append(keys, strings.Clone(k.Str))
		return true
	})
	return types.NewStringList(types.DefaultTypeAdapter, keys).(traits.Iterable).Iterator()
}

// materialize converts the whole object, for the rare operations that need
// all of it (equality with another map, conversion to Go).
func (o *jsonObject) materialize() traits.Mapper {
	m := map[ref.Val]ref.Val{}
	gjson.Parse(o.view()).ForEach(func(k, v gjson.Result) bool {
		m[types.String(strings.Clone(k.Str))] = resultValue(v)
		return true
	})
	return types.NewRefValMap(types.DefaultTypeAdapter, m)
}

// ConvertToNative implements ref.Val.
func (o *jsonObject) ConvertToNative(typeDesc reflect.Type) (any, error) {
	return o.materialize().ConvertToNative(typeDesc)
}

// ConvertToType implements ref.Val.
func (o *jsonObject) ConvertToType(typeVal ref.Type) ref.Val {
	switch typeVal {
	case types.MapType:
		return o
	case types.TypeType:
		return types.MapType
	}
	return types.NewErr("type conversion error from '%s' to '%s'", types.MapType, typeVal)
}

// Equal implements ref.Val.
func (o *jsonObject) Equal(other ref.Val) ref.Val {
	if _, ok := other.(traits.Mapper); !ok {
		return types.False
	}
	return o.materialize().Equal(other)
}

// Type implements ref.Val.
func (o *jsonObject) Type() ref.Type { return types.MapType }

// Value implements ref.Val.
func (o *jsonObject) Value() any { return o.materialize().Value() }

// jsonValue converts one validated JSON value to a CEL value.
func jsonValue(raw []byte) ref.Val {
	if len(raw) > 0 && raw[0] == '{' {
		return &jsonObject{raw: raw}
	}
	return resultValue(gjson.Parse(unsafeString(raw)))
}

// resultValue converts what gjson found. A string without escapes is the
// record's own bytes, not a copy: a rule's values live only while it is
// evaluated, during which the body does not change (the body is zeroed
// only after the response).
func resultValue(res gjson.Result) ref.Val {
	switch res.Type {
	case gjson.String:
		return types.String(res.Str)
	case gjson.Number:
		return numberValue(res.Raw)
	case gjson.True:
		return types.True
	case gjson.False:
		return types.False
	case gjson.Null:
		return types.NullValue
	}
	raw := res.Raw
	if raw == "" {
		return types.NewErr("no value")
	}
	if raw[0] == '{' {
		return &jsonObject{raw: unsafe.Slice(unsafe.StringData(raw), len(raw))}
	}
	var elems []ref.Val
	res.ForEach(func(_, v gjson.Result) bool {
		elems = append(elems, resultValue(v))
		return true
	})
	return types.NewRefValList(types.DefaultTypeAdapter, elems)
}

// numberValue is an int when the number is written as an integer that fits
// (gjson's Int saturates, so the text is parsed here), otherwise a double.
func numberValue(raw string) ref.Val {
	if !strings.ContainsAny(raw, ".eE") {
		if i, err := strconv.ParseInt(raw, 10, 64); err == nil {
			return types.Int(i)
		}
	}
	f, err := strconv.ParseFloat(raw, 64)
	if err != nil { // out of range: ±Inf would compare wrongly
		return types.NewErr("number out of range")
	}
	return types.Double(f)
}

var _ traits.Mapper = (*jsonObject)(nil)

// claimsMap is the token's claims as a CEL map that converts each claim
// once per caller rather than once per record: rules read the same claims
// for every record of a response.
type claimsMap struct {
	claims map[string]any
	cache  map[string]ref.Val
	whole  traits.Mapper
}

// all is the claims as a CEL map, for what needs more than a lookup.
func (c *claimsMap) all() traits.Mapper {
	if c.whole == nil {
		claims := c.claims
		if claims == nil {
			claims = map[string]any{}
		}
		c.whole = types.NewStringInterfaceMap(types.DefaultTypeAdapter, claims)
	}
	return c.whole
}

// Find implements traits.Mapper.
func (c *claimsMap) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return c.all().Find(key)
	}
	if v, ok := c.cache[string(k)]; ok {
		return v, true
	}
	raw, ok := c.claims[string(k)]
	if !ok {
		return nil, false
	}
	v := types.DefaultTypeAdapter.NativeToValue(raw)
	if l, ok := v.(traits.Lister); ok {
		if elems, ok := raw.([]any); ok {
			v = newClaimList(l, elems)
		}
	}
	if c.cache == nil {
		c.cache = make(map[string]ref.Val, 4)
	}
	c.cache[string(k)] = v
	return v, true
}

// Get implements traits.Indexer.
func (c *claimsMap) Get(key ref.Val) ref.Val {
	v, found := c.Find(key)
	if !found {
		return types.NewErr("no such key: %v", key)
	}
	return v
}

// Contains implements traits.Container.
func (c *claimsMap) Contains(key ref.Val) ref.Val {
	_, found := c.Find(key)
	return types.Bool(found)
}

func (c *claimsMap) Size() ref.Val               { return types.Int(len(c.claims)) }
func (c *claimsMap) Iterator() traits.Iterator   { return c.all().Iterator() }
func (c *claimsMap) Equal(other ref.Val) ref.Val { return c.all().Equal(other) }
func (c *claimsMap) Type() ref.Type              { return types.MapType }
func (c *claimsMap) Value() any                  { return c.claims }

// ConvertToNative implements ref.Val.
func (c *claimsMap) ConvertToNative(typeDesc reflect.Type) (any, error) {
	return c.all().ConvertToNative(typeDesc)
}

// ConvertToType implements ref.Val.
func (c *claimsMap) ConvertToType(typeVal ref.Type) ref.Val { return c.all().ConvertToType(typeVal) }

var _ traits.Mapper = (*claimsMap)(nil)

// claimList is a list claim (crm_team) whose elements are converted once
// per caller: CEL's list over []any converts each element at every
// Contains, that is for every record a rule like record.owner_id in
// claims.crm_team reads. Everything but Contains is the list CEL made.
type claimList struct {
	traits.Lister
	elems []ref.Val
}

func newClaimList(l traits.Lister, raw []any) *claimList {
	elems := make([]ref.Val, len(raw))
	for i, e := range raw {
		elems[i] = types.DefaultTypeAdapter.NativeToValue(e)
	}
	return &claimList{Lister: l, elems: elems}
}

// Contains implements traits.Container as the list CEL made does
// (types.baseList.Contains): true when an element equals elem, else false,
// errors included.
func (c *claimList) Contains(elem ref.Val) ref.Val {
	for _, v := range c.elems {
		if b, ok := elem.Equal(v).(types.Bool); ok && b == types.True {
			return types.True
		}
	}
	return types.False
}
