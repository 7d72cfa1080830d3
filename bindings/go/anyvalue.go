package spanguard

// #include "spanguard.h"
import "C"

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// anyMaxDepth is the deepest slice or map Any encodes (the value itself is
// level 1): the highest depth limit a tracer may have
// (SPANGUARD_MAX_DEPTH_LIMIT). One deeper is written as an empty
// arrayValue, unread, which the library replaces by the empty value and
// counts (ValuesTruncated), as it does any array or map deeper than the
// tracer's depth limit (64 by default, OpenTelemetry's
// attribute_value_depth_limit): the value arrives cut at that limit, the
// rest kept, as in the Python binding. It also ends a value that holds
// itself (a map set in itself), which so arrives cut at the limit too.
const anyMaxDepth = C.SPANGUARD_MAX_DEPTH_LIMIT

// anyMaxPointers is the most pointers (or interfaces) followed in a row:
// they are no level of AnyValue's, and a pointer that points at itself
// (or at one that points back) holds no value at all.
const anyMaxPointers = anyMaxDepth

// anyMaxValues is the most values one complex value may hold, all levels:
// a map holding another twice at each of 32 levels holds 2^32 with no cycle.
const anyMaxValues = 1000000

// ErrValueRejected: a value Any cannot carry (a type OpenTelemetry's
// AnyValue has no kind for, more than a million values, an integer past
// int64, a pointer that points at itself).
var ErrValueRejected = errors.New("spanguard: attribute value rejected")

// Any is a complex attribute value (OpenTelemetry's AnyValue): a
// map[string]any (kvlistValue, keys in sorted order), a []any (arrayValue),
// []byte (bytes), nil (the empty value), and inside those, nested, strings,
// bools, integers, floats, and slices and maps of them (any element and
// string-keyed map type). The value is encoded (copied) here, as an OTLP
// AnyValue message (SPANGUARD_VALUE_ANY); an error wrapping ErrValueRejected
// says what could not be carried, and then no attribute is made. A slice
// or map nested deeper than the tracer's depth limit (64 by default), one
// that holds itself too, arrives cut there: the empty value in its place,
// the rest kept, counted in Stats().ValuesTruncated.
func Any(k string, v any) (Attribute, error) {
	e := anyEncoder{}
	if err := e.value(v, 1); err != nil {
		return Attribute{}, fmt.Errorf("%w: %s: %v", ErrValueRejected, k, err)
	}
	return Attribute{Key: k, kind: C.SPANGUARD_VALUE_ANY, num: int64(len(e.buf)), ptr: unsafe.Pointer(unsafe.SliceData(e.buf))}, nil
}

type anyEncoder struct {
	buf    []byte
	values int
}

// AnyValue's fields (opentelemetry/proto/common/v1/common.proto).
const (
	anyString = 1
	anyBool   = 2
	anyInt    = 3
	anyDouble = 4
	anyArray  = 5
	anyKvlist = 6
	anyBytes  = 7
)

func (e *anyEncoder) tag(field, wire uint64) { e.buf = binary.AppendUvarint(e.buf, field<<3|wire) }

// open writes a length-delimited field's tag; closeAt puts its length in
// front of what was written after it.
func (e *anyEncoder) open(field uint64) int {
	e.tag(field, 2)
	return len(e.buf)
}

func (e *anyEncoder) closeAt(body int) {
	n := len(e.buf) - body
	var l [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(l[:], uint64(n))
	e.buf = append(e.buf, l[:k]...)
	copy(e.buf[body+k:], e.buf[body:body+n])
	copy(e.buf[body:], l[:k])
}

func (e *anyEncoder) bytesField(field uint64, b []byte) {
	e.tag(field, 2)
	e.buf = binary.AppendUvarint(e.buf, uint64(len(b)))
	e.buf = append(e.buf, b...)
}

func (e *anyEncoder) stringField(field uint64, s string) {
	e.tag(field, 2)
	e.buf = binary.AppendUvarint(e.buf, uint64(len(s)))
	e.buf = append(e.buf, s...)
}

func (e *anyEncoder) int(i int64) {
	e.tag(anyInt, 0)
	e.buf = binary.AppendUvarint(e.buf, uint64(i))
}

// cut writes a slice or map past anyMaxDepth: an empty arrayValue, which
// the library replaces by the empty value and counts.
func (e *anyEncoder) cut() {
	e.tag(anyArray, 2)
	e.buf = append(e.buf, 0)
}

// value appends the body of an AnyValue holding v, at nesting level depth.
// Strings that are not UTF-8 are sent as the library takes any string:
// their invalid bytes replaced (U+FFFD), which the library's checker asks.
func (e *anyEncoder) value(v any, depth int) error {
	if e.values++; e.values > anyMaxValues {
		return fmt.Errorf("more than %d values", anyMaxValues)
	}
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		e.stringField(anyString, validUTF8(x))
		return nil
	case bool:
		e.tag(anyBool, 0)
		if x {
			e.buf = append(e.buf, 1)
		} else {
			e.buf = append(e.buf, 0)
		}
		return nil
	case int:
		e.int(int64(x))
		return nil
	case int64:
		e.int(x)
		return nil
	case float64:
		e.tag(anyDouble, 1)
		e.buf = binary.LittleEndian.AppendUint64(e.buf, math.Float64bits(x))
		return nil
	case []byte:
		e.bytesField(anyBytes, x)
		return nil
	case []any:
		if depth > anyMaxDepth {
			e.cut()
			return nil
		}
		list := e.open(anyArray)
		for _, el := range x {
			if err := e.element(1, el, depth); err != nil {
				return err
			}
		}
		e.closeAt(list)
		return nil
	case map[string]any:
		if depth > anyMaxDepth {
			e.cut()
			return nil
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		list := e.open(anyKvlist)
		for _, k := range keys {
			kv := e.open(1)
			e.stringField(1, validUTF8(k))
			if err := e.element(2, x[k], depth); err != nil {
				return err
			}
			e.closeAt(kv)
		}
		e.closeAt(list)
		return nil
	}
	return e.reflected(reflect.ValueOf(v), depth)
}

// element writes v as an AnyValue in field `field` one level down.
func (e *anyEncoder) element(field uint64, v any, depth int) error {
	body := e.open(field)
	if err := e.value(v, depth+1); err != nil {
		return err
	}
	e.closeAt(body)
	return nil
}

// reflected takes the kinds the type switch does not name: other integer,
// float and string types, other slices and arrays, maps with string keys,
// pointers (nil: the empty value) and interfaces.
func (e *anyEncoder) reflected(r reflect.Value, depth int) error {
	switch r.Kind() {
	case reflect.String:
		e.stringField(anyString, validUTF8(r.String()))
	case reflect.Bool:
		return e.value(r.Bool(), depth)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.int(r.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if r.Uint() > math.MaxInt64 {
			return fmt.Errorf("%d is past int64", r.Uint())
		}
		e.int(int64(r.Uint()))
	case reflect.Float32, reflect.Float64:
		return e.value(r.Float(), depth)
	case reflect.Slice, reflect.Array:
		if r.Kind() == reflect.Slice && r.Type().Elem().Kind() == reflect.Uint8 {
			e.bytesField(anyBytes, r.Bytes())
			return nil
		}
		if depth > anyMaxDepth {
			e.cut()
			return nil
		}
		list := e.open(anyArray)
		for i := 0; i < r.Len(); i++ {
			if err := e.element(1, r.Index(i).Interface(), depth); err != nil {
				return err
			}
		}
		e.closeAt(list)
	case reflect.Map:
		if r.Type().Key().Kind() != reflect.String {
			return fmt.Errorf("a map's keys are %s, not strings", r.Type().Key())
		}
		if depth > anyMaxDepth {
			e.cut()
			return nil
		}
		keys := r.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		list := e.open(anyKvlist)
		for _, k := range keys {
			kv := e.open(1)
			e.stringField(1, validUTF8(k.String()))
			if err := e.element(2, r.MapIndex(k).Interface(), depth); err != nil {
				return err
			}
			e.closeAt(kv)
		}
		e.closeAt(list)
	case reflect.Pointer, reflect.Interface:
		// Followed to what they point at, which is at this level.
		for n := 0; r.Kind() == reflect.Pointer || r.Kind() == reflect.Interface; n++ {
			if r.IsNil() {
				return nil
			}
			if n == anyMaxPointers {
				return fmt.Errorf("more than %d pointers in a row (one pointing at itself)", anyMaxPointers)
			}
			r = r.Elem()
		}
		return e.value(r.Interface(), depth)
	default:
		return fmt.Errorf("a %s is no OpenTelemetry value", r.Type())
	}
	return nil
}

// validUTF8 is s with invalid bytes replaced (U+FFFD): the library refuses
// a complex value whose text is not UTF-8.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
