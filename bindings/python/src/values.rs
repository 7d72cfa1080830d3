//! Python attribute values as `spanguard_attribute`s: `str`, `bool`, `int`
//! (64-bit) and `float`; `bytes`, `bytearray` and `memoryview` as bytes; a
//! list or tuple whose elements are all `str`, all `bool`, all `int` or all
//! `float` as an array (OpenTelemetry's homogeneous arrays); a `dict` with
//! `str` keys, any other list or tuple (mixed, nested) and `None` as a
//! complex value (OpenTelemetry's `AnyValue`, which its Python SDK keeps),
//! encoded here as an OTLP `AnyValue` message (`SPANGUARD_VALUE_ANY`). A
//! value spanguard cannot record is left out, counted and warned once,
//! never raised.

use std::ffi::c_char;
use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMemoryView, PyString, PyTuple,
};
use spanguard::ffi::types::*;

use crate::report::Problem;
use crate::text::{Utf8, str_utf8, utf8};

/// One value, classified: the scalars the typed setters take, or a bytes or
/// sequence value, which goes through an attribute array.
pub enum Value<'a> {
    Str(Utf8<'a>),
    Int(i64),
    Double(f64),
    Bool(bool),
    /// bytes, bytearray, memoryview, list or tuple: see `Attributes::push`.
    Compound,
}

/// Classifies `v`; `None` (counted in `rejected`, warned once) when
/// spanguard cannot record it.
#[inline]
pub fn value<'a>(
    v: &'a Bound<'_, PyAny>,
    key: &Bound<'_, PyAny>,
    rejected: &AtomicU64,
) -> Option<Value<'a>> {
    if let Ok(s) = v.cast::<PyString>() {
        return Some(Value::Str(str_utf8(s)));
    }
    // bool before int: a bool is an int in Python.
    if let Ok(b) = v.cast::<PyBool>() {
        return Some(Value::Bool(b.is_true()));
    }
    if v.is_instance_of::<PyInt>() {
        if let Ok(i) = v.extract::<i64>() {
            return Some(Value::Int(i));
        }
    } else if let Ok(f) = v.cast::<PyFloat>() {
        return Some(Value::Double(f.value()));
    } else if v.is_none() || is_compound(v) {
        return Some(Value::Compound);
    }
    reject_value(v, key, Problem::BadValue, rejected);
    None
}

/// `reject` for the value `v` of attribute `key`, the warning naming the
/// key and the value's type (never the value: it may be a prompt or a
/// secret).
fn reject_value(
    v: &Bound<'_, PyAny>,
    key: &Bound<'_, PyAny>,
    problem: Problem,
    rejected: &AtomicU64,
) {
    // Relaxed: a statistic, read by stats() with no ordering to keep.
    rejected.fetch_add(1, Ordering::Relaxed);
    problem.warn_once_about(v.py(), || {
        let key = utf8(key);
        let key = String::from_utf8_lossy(key.as_bytes());
        let key: String = key.chars().take(200).collect();
        let type_name = v
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "?".to_string());
        Some(format!("attribute {key:?} (a {type_name})"))
    });
}

fn is_compound(v: &Bound<'_, PyAny>) -> bool {
    v.is_instance_of::<PyBytes>()
        || v.is_instance_of::<PyList>()
        || v.is_instance_of::<PyTuple>()
        || v.is_instance_of::<PyByteArray>()
        || v.is_instance_of::<PyMemoryView>()
        || v.is_instance_of::<PyDict>()
}

/// A time in Unix nanoseconds for the C ABI (0: now) from what a caller
/// gave: None (now), an int of nanoseconds (OpenTelemetry's unit), a float
/// of nanoseconds (`time.time_ns() * 1.0`), or a `datetime` (naive: local
/// time, as `datetime.timestamp` reads it). Anything else, a negative or
/// a non-finite time is now, counted in `values_rejected` and warned once:
/// a recording call never raises, and an `end` or a `record_exception` in
/// an `except` block must not fail over a timestamp.
pub fn unix_time_ns(t: Option<&Bound<'_, PyAny>>, rejected: &AtomicU64) -> u64 {
    let Some(t) = t.filter(|t| !t.is_none()) else {
        return 0;
    };
    if let Ok(ns) = t.extract::<u64>() {
        return ns;
    }
    let ns = if t.is_instance_of::<pyo3::types::PyFloat>() {
        t.extract::<f64>().ok()
    } else if t.is_instance_of::<pyo3::types::PyDateTime>() {
        t.call_method0("timestamp")
            .and_then(|s| s.extract::<f64>())
            .ok()
            .map(|s| s * 1e9)
    } else {
        None
    };
    match ns {
        // Below 2^64 ns (the year 2554), not negative, a number.
        Some(ns) if (0.0..1.8e19).contains(&ns) => ns.round() as u64,
        _ => {
            reject(t.py(), Problem::BadTime, rejected);
            0
        }
    }
}

fn reject(py: Python<'_>, problem: Problem, rejected: &AtomicU64) {
    // Relaxed: a statistic, read by stats() with no ordering to keep.
    rejected.fetch_add(1, Ordering::Relaxed);
    problem.warn_once(py);
}

/// The elements of an array value, in the layout its C type wants.
enum Elements {
    Strings(Vec<spanguard_string>),
    Ints(Vec<i64>),
    Doubles(Vec<f64>),
    Bools(Vec<bool>),
}

/// What the elements of a homogeneous sequence are.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ElementType {
    Str,
    Bool,
    Int,
    Float,
}

/// An array element: the type's zero for None, else what `read` gives.
fn zero_if_none<T: Default>(e: &Bound<'_, PyAny>, read: impl FnOnce() -> Option<T>) -> Option<T> {
    if e.is_none() {
        Some(T::default())
    } else {
        read()
    }
}

fn element_type(e: &Bound<'_, PyAny>) -> Option<ElementType> {
    if e.is_instance_of::<PyString>() {
        Some(ElementType::Str)
    } else if e.is_instance_of::<PyBool>() {
        Some(ElementType::Bool)
    } else if e.is_instance_of::<PyInt>() {
        Some(ElementType::Int)
    } else if e.is_instance_of::<PyFloat>() {
        Some(ElementType::Float)
    } else {
        None
    }
}

/// Attributes of one call, with the Python objects and bytes they point
/// into kept alive until the call returns.
pub struct Attributes<'py> {
    items: Vec<spanguard_attribute>,
    /// How many of the call's attributes were left out for their value
    /// (`value`, `compound`): a span counts them dropped (`span::set_all`).
    left_out: u32,
    owned: Vec<Vec<u8>>,
    arrays: Vec<Elements>,
    _alive: Vec<Bound<'py, PyAny>>,
}

impl<'py> Attributes<'py> {
    fn with_capacity(n: usize) -> Attributes<'py> {
        Attributes {
            items: Vec::with_capacity(n),
            left_out: 0,
            owned: Vec::new(),
            arrays: Vec::new(),
            _alive: Vec::with_capacity(2 * n),
        }
    }

    /// The items of `dict` that spanguard can record; the others are
    /// counted in `rejected`.
    pub fn from_dict(dict: &Bound<'py, PyDict>, rejected: &AtomicU64) -> Attributes<'py> {
        let mut attrs = Attributes::with_capacity(dict.len());
        for (k, v) in dict.iter() {
            attrs.push(&k, &v, rejected);
            attrs._alive.push(k);
            attrs._alive.push(v);
        }
        attrs
    }

    /// One attribute (a bytes or sequence value for `set_attribute`).
    pub fn one(
        key: &Bound<'py, PyAny>,
        v: &Bound<'py, PyAny>,
        rejected: &AtomicU64,
    ) -> Attributes<'py> {
        let mut attrs = Attributes::with_capacity(1);
        attrs.push(key, v, rejected);
        attrs._alive.push(key.clone());
        attrs._alive.push(v.clone());
        attrs
    }

    /// From any mapping (OpenTelemetry passes `BoundedAttributes`), or
    /// nothing for `None`.
    pub fn from_mapping(obj: Option<&Bound<'py, PyAny>>, rejected: &AtomicU64) -> Attributes<'py> {
        let Some(obj) = obj.filter(|o| !o.is_none()) else {
            return Attributes::with_capacity(0);
        };
        if let Ok(d) = obj.cast::<PyDict>() {
            return Attributes::from_dict(d, rejected);
        }
        match obj
            .call_method0("items")
            .and_then(|items| PyDict::from_sequence(&items))
        {
            Ok(d) => Attributes::from_dict(&d, rejected),
            Err(_) => {
                reject(obj.py(), Problem::BadValue, rejected);
                Attributes::with_capacity(0)
            }
        }
    }

    fn push(&mut self, key: &Bound<'py, PyAny>, v: &Bound<'py, PyAny>, rejected: &AtomicU64) {
        let Some(value) = value(v, key, rejected) else {
            self.left_out = self.left_out.saturating_add(1);
            return;
        };
        let mut a = spanguard_attribute {
            key: std::ptr::null(),
            key_len: 0,
            type_: 0,
            bool_value: false,
            int_value: 0,
            double_value: 0.0,
            string_value: std::ptr::null(),
            string_len: 0,
        };
        match value {
            Value::Str(s) => {
                let (p, n) = self.keep(s);
                a.type_ = SPANGUARD_VALUE_STRING;
                a.string_value = p;
                a.string_len = n;
            }
            Value::Int(i) => {
                a.type_ = SPANGUARD_VALUE_INT;
                a.int_value = i;
            }
            Value::Double(d) => {
                a.type_ = SPANGUARD_VALUE_DOUBLE;
                a.double_value = d;
            }
            Value::Bool(b) => {
                a.type_ = SPANGUARD_VALUE_BOOL;
                a.bool_value = b;
            }
            Value::Compound => {
                let Some((type_, p, n)) = self.compound(v, key, rejected) else {
                    self.left_out = self.left_out.saturating_add(1);
                    return;
                };
                a.type_ = type_;
                a.string_value = p;
                a.string_len = n;
            }
        }
        let key = self.keep(utf8(key));
        (a.key, a.key_len) = key;
        self.items.push(a);
    }

    /// A bytes or array value: its `SPANGUARD_VALUE_*` type, and the data
    /// and count that go in `string_value` and `string_len`, kept in
    /// `self` (or in `v`, which the caller keeps alive). None (counted,
    /// warned once) for a sequence that is not an OpenTelemetry array.
    fn compound(
        &mut self,
        v: &Bound<'py, PyAny>,
        key: &Bound<'py, PyAny>,
        rejected: &AtomicU64,
    ) -> Option<(u32, *const c_char, usize)> {
        if let Ok(b) = v.cast::<PyBytes>() {
            // Immutable and kept alive by the caller: borrowed.
            let b = b.as_bytes();
            return Some((SPANGUARD_VALUE_BYTES, b.as_ptr().cast(), b.len()));
        }
        if let Ok(b) = v.cast::<PyByteArray>() {
            // Mutable, and Python code may run before the call (a key's
            // __str__): copied.
            let (p, n) = self.keep(Utf8::Owned(b.to_vec()));
            return Some((SPANGUARD_VALUE_BYTES, p, n));
        }
        if v.is_instance_of::<PyMemoryView>() {
            let Ok(bytes) = v
                .call_method0("tobytes")
                .and_then(|b| Ok(b.cast_into::<PyBytes>()?))
            else {
                reject_value(v, key, Problem::BadValue, rejected);
                return None;
            };
            let (p, n) = {
                let b = bytes.as_bytes();
                (b.as_ptr().cast(), b.len())
            };
            self._alive.push(bytes.into_any());
            return Some((SPANGUARD_VALUE_BYTES, p, n));
        }
        let elements: Vec<Bound<'py, PyAny>> = if let Ok(l) = v.cast::<PyList>() {
            l.iter().collect()
        } else if let Ok(t) = v.cast::<PyTuple>() {
            t.iter().collect()
        } else {
            // A dict, or None: a complex value.
            return self.any_value(v, key, rejected);
        };
        let Some(array) = self.array(&elements) else {
            // Mixed or nested: a complex value.
            return self.any_value(v, key, rejected);
        };
        let (type_, p, n) = match &array {
            Elements::Strings(e) => (SPANGUARD_VALUE_STRING_ARRAY, e.as_ptr().cast(), e.len()),
            Elements::Ints(e) => (SPANGUARD_VALUE_INT_ARRAY, e.as_ptr().cast(), e.len()),
            Elements::Doubles(e) => (SPANGUARD_VALUE_DOUBLE_ARRAY, e.as_ptr().cast(), e.len()),
            Elements::Bools(e) => (SPANGUARD_VALUE_BOOL_ARRAY, e.as_ptr().cast(), e.len()),
        };
        // A Vec's heap buffer stays put when the Vec moves into `arrays`.
        self.arrays.push(array);
        Some((type_, p, n))
    }

    /// `v` as an encoded OTLP `AnyValue` (`SPANGUARD_VALUE_ANY`), kept in
    /// `self`. None (counted, warned once) when something in it cannot be
    /// carried (see `encode_any_value`).
    fn any_value(
        &mut self,
        v: &Bound<'py, PyAny>,
        key: &Bound<'py, PyAny>,
        rejected: &AtomicU64,
    ) -> Option<(u32, *const c_char, usize)> {
        let mut message = Vec::new();
        if !encode_any_value(v, 1, &mut message) {
            reject_value(v, key, Problem::BadComplexValue, rejected);
            return None;
        }
        let (p, n) = self.keep(Utf8::Owned(message));
        Some((SPANGUARD_VALUE_ANY, p, n))
    }

    /// The elements as one C array, when they all have one type (an empty
    /// sequence is an empty array); the string elements are kept alive in
    /// `self`. A None element is its type's zero ("", 0, 0.0, False; a
    /// sequence of Nones, strings): OpenTelemetry keeps nulls in arrays
    /// (the Python SDK takes them), and lets an exporter that cannot send
    /// a null send those instead. spanguard's arrays are typed; leaving
    /// the attribute out, as before, lost the other elements too.
    fn array(&mut self, elements: &[Bound<'py, PyAny>]) -> Option<Elements> {
        let ty = match elements.iter().find(|e| !e.is_none()) {
            Some(e) => element_type(e)?,
            None => ElementType::Str,
        };
        if elements
            .iter()
            .any(|e| !e.is_none() && element_type(e) != Some(ty))
        {
            return None;
        }
        Some(match ty {
            ElementType::Str => {
                let mut out = Vec::with_capacity(elements.len());
                for e in elements {
                    let (ptr, len) = if e.is_none() {
                        ("".as_ptr().cast(), 0)
                    } else {
                        self.keep(str_utf8(e.cast::<PyString>().ok()?))
                    };
                    out.push(spanguard_string { ptr, len });
                }
                // The elements' UTF-8 lives in the str objects: keep them.
                self._alive.extend(elements.iter().cloned());
                Elements::Strings(out)
            }
            ElementType::Bool => Elements::Bools(
                elements
                    .iter()
                    .map(|e| zero_if_none(e, || e.cast::<PyBool>().map(|b| b.is_true()).ok()))
                    .collect::<Option<Vec<bool>>>()?,
            ),
            ElementType::Int => Elements::Ints(
                elements
                    .iter()
                    .map(|e| zero_if_none(e, || e.extract::<i64>().ok()))
                    .collect::<Option<Vec<i64>>>()?,
            ),
            ElementType::Float => Elements::Doubles(
                elements
                    .iter()
                    .map(|e| zero_if_none(e, || e.cast::<PyFloat>().map(|f| f.value()).ok()))
                    .collect::<Option<Vec<f64>>>()?,
            ),
        })
    }

    /// Pointer and length of `text`, owned bytes moved into `self` (a
    /// `Vec`'s heap buffer stays put when `owned` grows).
    fn keep(&mut self, text: Utf8<'_>) -> (*const c_char, usize) {
        match text {
            Utf8::Borrowed(b) => (b.as_ptr().cast(), b.len()),
            Utf8::Owned(v) => {
                let out = (v.as_ptr().cast(), v.len());
                self.owned.push(v);
                out
            }
        }
    }

    pub fn as_ptr(&self) -> *const spanguard_attribute {
        if self.items.is_empty() {
            std::ptr::null()
        } else {
            self.items.as_ptr()
        }
    }

    /// The items from `start` on, at most `SPANGUARD_MAX_ATTRIBUTES` (what
    /// one call takes): pointer and count.
    pub fn chunk(&self, start: usize) -> (*const spanguard_attribute, usize) {
        let n = self
            .items
            .len()
            .saturating_sub(start)
            .min(SPANGUARD_MAX_ATTRIBUTES as usize);
        if n == 0 {
            (std::ptr::null(), 0)
        } else {
            (self.items[start..].as_ptr(), n)
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Bytes the attributes store in a span, at most: their keys,
    /// strings, bytes and encoded values, and their arrays' elements (a
    /// number 8, a string its bytes and 8 for where they are). What
    /// decides whether they may wait for payload chunks (`green`).
    pub fn stored_bytes(&self) -> usize {
        let items = self.items.iter().map(|a| match a.type_ {
            SPANGUARD_VALUE_STRING | SPANGUARD_VALUE_BYTES | SPANGUARD_VALUE_ANY => {
                a.key_len.saturating_add(a.string_len)
            }
            // An array's string_len is its count of elements.
            _ => a.key_len,
        });
        let elements = self.arrays.iter().map(|array| match array {
            Elements::Strings(e) => e
                .iter()
                .map(|s| s.len.saturating_add(8))
                .fold(0, usize::saturating_add),
            Elements::Ints(e) => e.len().saturating_mul(8),
            Elements::Doubles(e) => e.len().saturating_mul(8),
            Elements::Bools(e) => e.len(),
        });
        items.chain(elements).fold(0, usize::saturating_add)
    }

    /// How many attributes were left out for their value.
    pub fn left_out(&self) -> u32 {
        self.left_out
    }
}

/// The deepest list or dict encoded (`span::any_value::MAX_DEPTH_LIMIT`,
/// the highest depth limit a tracer may have): the attribute's value is
/// level 1. One deeper is sent as an empty list, which the library
/// replaces by the empty value (None) and counts, as it does any list or
/// dict deeper than its depth limit (64 by default, OpenTelemetry's). It
/// also ends a value that holds itself.
const MAX_ANY_VALUE_DEPTH: usize = spanguard::span::any_value::MAX_DEPTH_LIMIT as usize;

/// Appends `v`, at nesting level `depth`, as the body of an OTLP
/// `AnyValue` (opentelemetry/proto/common/v1/common.proto): None as no
/// field (the empty value), str, bool, int (64-bit), float, bytes (also
/// bytearray and memoryview), list and tuple as an `ArrayValue`, dict as
/// a `KeyValueList`; a list, tuple or dict past `MAX_ANY_VALUE_DEPTH` as
/// an empty `ArrayValue`, unread (replaced by the library: see there).
/// False for anything else inside, a key that is not a str, or an int
/// past 64 bits. A
/// string's lone surrogates, which UTF-8 cannot hold, are replaced
/// (U+FFFD), as the library replaces a string's invalid bytes.
fn encode_any_value(v: &Bound<'_, PyAny>, depth: usize, out: &mut Vec<u8>) -> bool {
    const STRING: u64 = 1;
    const BOOL: u64 = 2;
    const INT: u64 = 3;
    const DOUBLE: u64 = 4;
    const ARRAY: u64 = 5;
    const KVLIST: u64 = 6;
    const BYTES: u64 = 7;
    const LIST_VALUES: u64 = 1;
    const KEY: u64 = 1;
    const VALUE: u64 = 2;
    if v.is_none() {
        return true;
    }
    if let Ok(s) = v.cast::<PyString>() {
        put_len_field(out, STRING, &utf8_replaced(s));
    } else if let Ok(b) = v.cast::<PyBool>() {
        put_varint(out, BOOL << 3);
        put_varint(out, b.is_true() as u64);
    } else if v.is_instance_of::<PyInt>() {
        let Ok(i) = v.extract::<i64>() else {
            return false;
        };
        put_varint(out, INT << 3);
        put_varint(out, i as u64);
    } else if let Ok(f) = v.cast::<PyFloat>() {
        put_varint(out, (DOUBLE << 3) | 1);
        out.extend_from_slice(&f.value().to_bits().to_le_bytes());
    } else if let Ok(b) = v.cast::<PyBytes>() {
        put_len_field(out, BYTES, b.as_bytes());
    } else if let Ok(b) = v.cast::<PyByteArray>() {
        put_len_field(out, BYTES, &b.to_vec());
    } else if v.is_instance_of::<PyMemoryView>() {
        let Ok(b) = v
            .call_method0("tobytes")
            .and_then(|b| Ok(b.cast_into::<PyBytes>()?))
        else {
            return false;
        };
        put_len_field(out, BYTES, b.as_bytes());
    } else if depth > MAX_ANY_VALUE_DEPTH
        && (v.is_instance_of::<PyList>()
            || v.is_instance_of::<PyTuple>()
            || v.is_instance_of::<PyDict>())
    {
        put_len_field(out, ARRAY, &[]);
    } else if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
        let items: Vec<Bound<'_, PyAny>> = match v.cast::<PyList>() {
            Ok(l) => l.iter().collect(),
            Err(_) => match v.cast::<PyTuple>() {
                Ok(t) => t.iter().collect(),
                Err(_) => return false,
            },
        };
        let mut list = Vec::new();
        for item in &items {
            let mut element = Vec::new();
            if !encode_any_value(item, depth + 1, &mut element) {
                return false;
            }
            put_len_field(&mut list, LIST_VALUES, &element);
        }
        put_len_field(out, ARRAY, &list);
    } else if let Ok(d) = v.cast::<PyDict>() {
        let mut list = Vec::new();
        for (k, item) in d.iter() {
            let Ok(k) = k.cast::<PyString>() else {
                return false;
            };
            let mut member = Vec::new();
            put_len_field(&mut member, KEY, &utf8_replaced(k));
            let mut value = Vec::new();
            if !encode_any_value(&item, depth + 1, &mut value) {
                return false;
            }
            put_len_field(&mut member, VALUE, &value);
            put_len_field(&mut list, LIST_VALUES, &member);
        }
        put_len_field(out, KVLIST, &list);
    } else {
        return false;
    }
    true
}

/// A str as UTF-8, lone surrogates replaced.
fn utf8_replaced(s: &Bound<'_, PyString>) -> Vec<u8> {
    match str_utf8(s) {
        Utf8::Borrowed(b) => b.to_vec(),
        Utf8::Owned(v) => String::from_utf8_lossy(&v).into_owned().into_bytes(),
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_len_field(out: &mut Vec<u8>, number: u64, payload: &[u8]) {
    put_varint(out, (number << 3) | 2);
    put_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}
