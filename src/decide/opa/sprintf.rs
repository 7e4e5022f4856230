//! Decide stage: OPA's `sprintf` builtin for OPA modules, formatting as Go's
//! `fmt.Sprintf` does, because OPA itself hands the arguments to Go: a
//! policy's messages must read the same under toolgate as under `opa eval`.
//!
//! OPA converts each argument before formatting: an integral number becomes
//! a Go `int` (or `*big.Int`), any other number a `float64`, a string a Go
//! string, and every other value its Rego text (`true`, `null`, `[1, "a"]`,
//! `{"k": 1}`) as a Go string. The Go quirks follow from that: `%f` of `5`
//! prints `%!f(int=5)`, `%d` of `true` prints `%!d(string=true)`.
//!
//! Supported: flags `-+# 0`, width, precision, verbs `v d s q f F e E g G x
//! X o b c %`. Not supported: `*` widths and `[n]` argument indexes (they
//! print as Go prints a bad verb). Widths and precisions are clamped at
//! 4096 so a policy cannot make the host allocate without bound.

use std::borrow::Cow;
use std::fmt::Write;

use serde_json::Value;

const MAX_WIDTH: usize = 4096;

/// One argument as Go sees it.
#[derive(Debug)]
enum Arg<'a> {
    Int(i128),
    Float(f64),
    Str(Cow<'a, str>),
}

impl Arg<'_> {
    fn from_value(v: &Value) -> Arg<'_> {
        match v {
            Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => Arg::Int(i128::from(i)),
                (None, Some(u), _) => Arg::Int(i128::from(u)),
                (None, None, Some(f)) => Arg::Float(f),
                (None, None, None) => Arg::Str(Cow::Owned(n.to_string())),
            },
            Value::String(s) => Arg::Str(Cow::Borrowed(s)),
            other => Arg::Str(Cow::Owned(rego_text(other))),
        }
    }

    /// Go's name for the type, shown in `%!verb(type=value)`.
    fn type_name(&self) -> &'static str {
        match self {
            Arg::Int(i) if i64::try_from(*i).is_err() => "*big.Int",
            Arg::Int(_) => "int",
            Arg::Float(_) => "float64",
            Arg::Str(_) => "string",
        }
    }

    /// `%v` without flags.
    fn plain(&self) -> String {
        match self {
            Arg::Int(i) => i.to_string(),
            Arg::Float(f) => fmt_g(*f, None, false),
            Arg::Str(s) => s.to_string(),
        }
    }
}

/// A parsed `%…` directive.
#[derive(Debug, Default)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// `sprintf(format, args)` as OPA computes it.
pub(super) fn sprintf(format: &str, args: &[Value]) -> String {
    let args: Vec<Arg<'_>> = args.iter().map(Arg::from_value).collect();
    let mut out = String::with_capacity(format.len() + 16);
    let mut next = 0usize;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '#' => spec.sharp = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                _ => break,
            }
            chars.next();
        }
        spec.width = number(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.prec = Some(number(&mut chars).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        match args.get(next) {
            None => {
                let _ = write!(out, "%!{verb}(MISSING)");
            }
            Some(arg) => {
                next += 1;
                match verb_text(verb, arg, &spec) {
                    Some(text) => {
                        out.push_str(&pad(&text, &spec, verb, !matches!(arg, Arg::Str(_))))
                    }
                    None => {
                        let _ = write!(out, "%!{verb}({}={})", arg.type_name(), arg.plain());
                    }
                }
            }
        }
    }
    if next < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[next..]
            .iter()
            .map(|a| format!("{}={}", a.type_name(), a.plain()))
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

fn number(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<usize> {
    let mut n: Option<usize> = None;
    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
        chars.next();
        n = Some((n.unwrap_or(0) * 10 + d as usize).min(MAX_WIDTH));
    }
    n
}

/// The text for one verb before padding, or `None` for Go's bad-verb form.
fn verb_text(verb: char, arg: &Arg<'_>, spec: &Spec) -> Option<String> {
    let text = match (verb, arg) {
        ('v' | 'd', Arg::Int(i)) => signed(*i, 10, spec, false),
        ('x' | 'X' | 'o' | 'b', Arg::Int(i)) => {
            let radix = match verb {
                'o' => 8,
                'b' => 2,
                _ => 16,
            };
            signed(*i, radix, spec, verb == 'X')
        }
        ('c', Arg::Int(i)) => rune(*i).to_string(),
        ('q', Arg::Int(i)) => go_quote(&rune(*i).to_string(), '\''),
        ('v' | 'g' | 'G', Arg::Float(f)) => with_sign(fmt_g(*f, spec.prec, verb == 'G'), spec),
        ('f' | 'F', Arg::Float(f)) => with_sign(format!("{:.*}", spec.prec.unwrap_or(6), f), spec),
        ('e' | 'E', Arg::Float(f)) => {
            with_sign(fmt_e(*f, spec.prec.unwrap_or(6), verb == 'E'), spec)
        }
        ('v' | 's', Arg::Str(s)) => truncate(s, spec.prec),
        ('q', Arg::Str(s)) => go_quote(s, '"'),
        ('x' | 'X', Arg::Str(s)) => {
            let hex: String = s.bytes().map(|b| format!("{b:02x}")).collect();
            if verb == 'X' { hex.to_uppercase() } else { hex }
        }
        _ => return None,
    };
    Some(text)
}

fn rune(i: i128) -> char {
    u32::try_from(i)
        .ok()
        .and_then(char::from_u32)
        .unwrap_or('\u{fffd}')
}

fn signed(i: i128, radix: u32, spec: &Spec, upper: bool) -> String {
    let mut digits = match radix {
        16 if upper => format!("{:X}", i.unsigned_abs()),
        16 => format!("{:x}", i.unsigned_abs()),
        8 => format!("{:o}", i.unsigned_abs()),
        2 => format!("{:b}", i.unsigned_abs()),
        _ => i.unsigned_abs().to_string(),
    };
    if let Some(p) = spec.prec
        && digits.len() < p
    {
        digits = format!("{}{digits}", "0".repeat(p - digits.len()));
    }
    if spec.sharp {
        match radix {
            16 if upper => digits.insert_str(0, "0X"),
            16 => digits.insert_str(0, "0x"),
            8 if !digits.starts_with('0') => digits.insert(0, '0'),
            _ => {}
        }
    }
    if i < 0 {
        digits.insert(0, '-');
        digits
    } else {
        with_sign(digits, spec)
    }
}

fn with_sign(text: String, spec: &Spec) -> String {
    if text.starts_with('-') || text.starts_with('+') {
        text
    } else if spec.plus {
        format!("+{text}")
    } else if spec.space {
        format!(" {text}")
    } else {
        text
    }
}

fn truncate(s: &str, prec: Option<usize>) -> String {
    match prec {
        Some(p) => s.chars().take(p).collect(),
        None => s.to_owned(),
    }
}

/// Pads to the width: spaces (or zeros, after a number's sign), left or right.
fn pad(text: &str, spec: &Spec, verb: char, numeric: bool) -> String {
    let len = text.chars().count();
    let Some(width) = spec.width.filter(|w| *w > len) else {
        return text.to_owned();
    };
    let fill = width - len;
    if spec.minus {
        return format!("{text}{}", " ".repeat(fill));
    }
    // Go ignores the 0 flag for integers given a precision.
    let int_with_prec = matches!(verb, 'd' | 'x' | 'X' | 'o' | 'b') && spec.prec.is_some();
    if spec.zero && !int_with_prec {
        let sign = numeric && verb != 'c' && verb != 'q' && text.starts_with(['-', '+', ' ']);
        let (head, tail) = text.split_at(usize::from(sign));
        return format!("{head}{}{tail}", "0".repeat(fill));
    }
    format!("{}{text}", " ".repeat(fill))
}

/// Go's `%e`: mantissa with `prec` decimals, exponent signed and two digits.
fn fmt_e(f: f64, prec: usize, upper: bool) -> String {
    if !f.is_finite() {
        return non_finite(f);
    }
    let raw = format!("{f:.prec$e}");
    let (mantissa, exp) = raw.split_once('e').unwrap_or((&raw, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let e = if upper { 'E' } else { 'e' };
    format!(
        "{mantissa}{e}{}{:02}",
        if exp < 0 { '-' } else { '+' },
        exp.unsigned_abs()
    )
}

/// Go's `%g` (and `%v` of a float): the shortest digits that read back the
/// same (or `prec` significant digits), in `%e` form when the exponent is
/// below -4 or at least the precision (6 for the shortest form).
fn fmt_g(f: f64, prec: Option<usize>, upper: bool) -> String {
    if !f.is_finite() {
        return non_finite(f);
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let raw = match prec {
        Some(p) => format!("{:.*e}", p.max(1) - 1, f.abs()),
        None => format!("{:e}", f.abs()),
    };
    let (mantissa, exp) = raw.split_once('e').unwrap_or((&raw, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let eprec = prec.map_or(6, |p| i32::try_from(p.max(1)).unwrap_or(i32::MAX));
    let sign = if f < 0.0 { "-" } else { "" };
    if exp < -4 || exp >= eprec {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        let e = if upper { 'E' } else { 'e' };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!(
            "{sign}{first}{dot}{rest}{e}{esign}{:02}",
            exp.unsigned_abs()
        );
    }
    let text = if exp < 0 {
        format!("0.{}{digits}", "0".repeat(exp.unsigned_abs() as usize - 1))
    } else {
        let point = exp as usize + 1;
        if digits.len() <= point {
            format!("{digits}{}", "0".repeat(point - digits.len()))
        } else {
            format!("{}.{}", &digits[..point], &digits[point..])
        }
    };
    format!("{sign}{text}")
}

fn non_finite(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f > 0.0 {
        "+Inf".into()
    } else {
        "-Inf".into()
    }
}

/// Go's `strconv.Quote` (or `QuoteRune` with `'`): printable characters as
/// they are, the usual backslash escapes, `\x`/`\u`/`\U` for the rest.
/// "Printable" approximates Go's `unicode.IsPrint` by "not a control".
pub(super) fn go_quote(s: &str, quote: char) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// A value as Rego prints it (OPA's `ast.Term.String()`): strings quoted,
/// `", "` between elements, `": "` after keys, object keys sorted.
pub(super) fn rego_text(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => go_quote(s, '"'),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(rego_text).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => {
            let mut pairs: Vec<(&String, &Value)> = map.iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(b.0));
            let items: Vec<String> = pairs
                .into_iter()
                .map(|(k, v)| format!("{}: {}", go_quote(k, '"'), rego_text(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}
