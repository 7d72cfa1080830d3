//! Python attribute values as `spanguard_attribute`s. A value spanguard
//! cannot record is left out, counted and warned once, never raised.

use std::ffi::c_char;
use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};
use spanguard::ffi::types::*;

use crate::report::Problem;
use crate::text::{Utf8, str_utf8, utf8};

/// One value, classified.
pub enum Value<'a> {
    Str(Utf8<'a>),
    Int(i64),
    Double(f64),
    Bool(bool),
}

/// Classifies `v`; `None` (counted in `rejected`, warned once) when
/// spanguard cannot record it.
#[inline]
pub fn value<'a>(v: &'a Bound<'_, PyAny>, rejected: &AtomicU64) -> Option<Value<'a>> {
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
    }
    let problem = if v.is_instance_of::<PyList>()
        || v.is_instance_of::<PyTuple>()
        || v.is_instance_of::<PyBytes>()
        || v.is_instance_of::<PyByteArray>()
    {
        Problem::NotYetValue
    } else {
        Problem::BadValue
    };
    // Relaxed: a statistic, read by stats() with no ordering to keep.
    rejected.fetch_add(1, Ordering::Relaxed);
    problem.warn_once(v.py());
    None
}

/// Attributes of one call, with the Python objects and bytes they point
/// into kept alive until the call returns.
pub struct Attributes<'py> {
    items: Vec<spanguard_attribute>,
    owned: Vec<Vec<u8>>,
    _alive: Vec<Bound<'py, PyAny>>,
}

impl<'py> Attributes<'py> {
    /// The items of `dict` that spanguard can record; the others are
    /// counted in `rejected`.
    pub fn from_dict(dict: &Bound<'py, PyDict>, rejected: &AtomicU64) -> Attributes<'py> {
        let n = dict.len();
        let mut attrs = Attributes {
            items: Vec::with_capacity(n),
            owned: Vec::new(),
            _alive: Vec::with_capacity(2 * n),
        };
        for (k, v) in dict.iter() {
            attrs.push(&k, &v, rejected);
            attrs._alive.push(k);
            attrs._alive.push(v);
        }
        attrs
    }

    /// From any mapping (OpenTelemetry passes `BoundedAttributes`), or
    /// nothing for `None`.
    pub fn from_mapping(obj: Option<&Bound<'py, PyAny>>, rejected: &AtomicU64) -> Attributes<'py> {
        let empty = Attributes {
            items: Vec::new(),
            owned: Vec::new(),
            _alive: Vec::new(),
        };
        let Some(obj) = obj.filter(|o| !o.is_none()) else {
            return empty;
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
                rejected.fetch_add(1, Ordering::Relaxed);
                Problem::BadValue.warn_once(obj.py());
                empty
            }
        }
    }

    fn push(&mut self, key: &Bound<'py, PyAny>, v: &Bound<'py, PyAny>, rejected: &AtomicU64) {
        let Some(value) = value(v, rejected) else {
            return;
        };
        let key = self.keep(utf8(key));
        let mut a = spanguard_attribute {
            key: key.0,
            key_len: key.1,
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
        }
        self.items.push(a);
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

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}
