//! The protobuf wire format: varints, length-delimited fields, and the small well-known
//! messages (map entries, `Quantity`, `IntOrString`, `Time`).

use serde_json::{Value, json};

use crate::base64;

/// A cursor over one message's bytes.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    /// A varint field's value, as a signed integer (negative int32s arrive sign-extended).
    pub(super) fn int(&mut self) -> Result<i64, String> {
        self.varint().map(|v| v as i64)
    }

    /// A length-delimited field's bytes.
    pub(super) fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = usize::try_from(self.varint()?).map_err(|_| "length overflow")?;
        let end = self.pos.checked_add(len).ok_or("length overflow")?;
        let s = self.buf.get(self.pos..end).ok_or("truncated field")?;
        self.pos = end;
        Ok(s)
    }

    fn skip(&mut self, wire: u64) -> Result<(), String> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.advance(8),
            2 => self.bytes().map(|_| ()),
            5 => self.advance(4),
            w => Err(format!("unsupported wire type {w}")),
        }
    }

    fn advance(&mut self, n: usize) -> Result<(), String> {
        if self.pos + n > self.buf.len() {
            return Err("truncated field".into());
        }
        self.pos += n;
        Ok(())
    }
}

/// Reads every field of a message: `read` gets the reader positioned at each field's value
/// with the field's number and wire type, and answers whether it read the value; values it
/// leaves are skipped.
pub(super) fn each_field<'a>(
    b: &'a [u8],
    mut read: impl FnMut(&mut Reader<'a>, u64, u64) -> Result<bool, String>,
) -> Result<(), String> {
    let mut r = Reader { buf: b, pos: 0 };
    while r.pos < r.buf.len() {
        let tag = r.varint()?;
        let (num, wire) = (tag >> 3, tag & 7);
        if !read(&mut r, num, wire)? {
            r.skip(wire)?;
        }
    }
    Ok(())
}

/// A string field's value.
pub(super) fn utf8(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "invalid UTF-8 in a string field".to_string())
}

/// A map entry: the string key in field 1, the value in field 2 decoded by `value`.
fn entry(
    b: &[u8],
    value: impl Fn(&[u8]) -> Result<Value, String>,
) -> Result<(String, Value), String> {
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    each_field(b, |r, num, wire| {
        match (num, wire) {
            (1, 2) => k = utf8(r.bytes()?)?,
            (2, 2) => v = value(r.bytes()?)?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok((k, v))
}

/// A `map<string, string>` entry, or with `bytes_value` a `map<string, bytes>` one (base64).
pub(super) fn map_entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), String> {
    entry(b, |raw| {
        Ok(Value::String(if bytes_value {
            base64::encode(raw)
        } else {
            utf8(raw)?
        }))
    })
}

/// A `map<string, Quantity>` entry.
pub(super) fn quantity_entry(b: &[u8]) -> Result<(String, Value), String> {
    entry(b, quantity)
}

/// A `Quantity` message: its string form.
pub(super) fn quantity(b: &[u8]) -> Result<Value, String> {
    let mut q = String::new();
    each_field(b, |r, num, wire| {
        if (num, wire) != (1, 2) {
            return Ok(false);
        }
        q = utf8(r.bytes()?)?;
        Ok(true)
    })?;
    Ok(Value::String(q))
}

/// An `IntOrString` message: a JSON number or string.
pub(super) fn int_or_string(b: &[u8]) -> Result<Value, String> {
    let (mut t, mut i, mut s) = (0i64, 0i64, String::new());
    each_field(b, |r, num, wire| {
        match (num, wire) {
            (1, 0) => t = r.int()?,
            // int32 on the wire: sign-extended to 64 bits.
            (2, 0) => i = r.int()? as i32 as i64,
            (3, 2) => s = utf8(r.bytes()?)?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(if t == 1 { Value::String(s) } else { json!(i) })
}

/// A `Time` message: RFC 3339 with second precision; the zero time (Go's JSON `null`) unset.
pub(super) fn time(b: &[u8]) -> Result<Value, String> {
    let mut secs = 0i64;
    each_field(b, |r, num, wire| {
        if (num, wire) != (1, 0) {
            return Ok(false);
        }
        secs = r.int()?;
        Ok(true)
    })?;
    if secs == 0 {
        return Ok(Value::Null);
    }
    let t = jiff::Timestamp::from_second(secs).map_err(|e| e.to_string())?;
    Ok(Value::String(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
}
