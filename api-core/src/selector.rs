//! Label and field selectors, parsed and matched the way the Kubernetes API server does it.
//!
//! Label selectors follow `k8s.io/apimachinery/pkg/labels`: the `?labelSelector=` grammar (`=`, `==`, `!=`,
//! `in (...)`, `notin (...)`, `key`, `!key`, and the numeric `>`/`<`), the key and value validation of
//! `NewRequirement`, requirements sorted by key, and the same error texts so that kubectl prints what it prints
//! against a real cluster. [`LabelSelector::from_object`] mirrors `metav1.LabelSelectorAsSelector`.
//!
//! Field selectors follow `k8s.io/apimachinery/pkg/fields` (`=`, `==`, `!=`, backslash escapes in values) and
//! the per-kind field label conversion and selectable-field sets of the API server's registries.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value};

use crate::registry::ResourceDef;

/// Errors from parsing or checking selectors. Messages are Kubernetes' own so clients see the same text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A `labelSelector` string that does not parse, or that names an invalid key or value.
    #[error("{0}")]
    LabelSelector(String),
    /// A `metav1.LabelSelector` object (such as a Deployment's `spec.selector`) that is malformed.
    #[error("{0}")]
    LabelSelectorObject(String),
    /// A `fieldSelector` string that does not parse (bad term or bad escape in a value).
    #[error("{0}")]
    FieldSelector(String),
    /// A field selector names a field that this kind does not index; the message names the field.
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

// ---------------------------------------------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------------------------------------------

/// The operator of one label selector requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `key in (a,b)`: the label exists and has one of the values.
    In,
    /// `key notin (a,b)`: the label is absent or has none of the values.
    NotIn,
    /// `key=value`.
    Equals,
    /// `key==value` (same meaning as `=`, kept for the string form).
    DoubleEquals,
    /// `key!=value`: the label is absent or has another value.
    NotEquals,
    /// `key`: the label exists.
    Exists,
    /// `!key`: the label does not exist.
    DoesNotExist,
    /// `key>5`: the label is an integer greater than the value.
    GreaterThan,
    /// `key<5`: the label is an integer less than the value.
    LessThan,
}

/// One requirement of a label selector: a key, an operator and its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    op: Operator,
    values: Vec<String>,
}

impl Requirement {
    /// Builds a requirement, validating the key and values like `labels.NewRequirement` (error text included).
    pub fn new(key: &str, op: Operator, values: Vec<String>) -> Result<Self> {
        new_requirement(key, op, values).map_err(Error::LabelSelector)
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.op
    }

    /// The values, in the order given (sorted and de-duplicated when parsed from a string).
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether a label set satisfies this requirement (`Requirement.Matches`).
    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        let got = labels.get(&self.key).map(|v| v.as_str().unwrap_or(""));
        let has_value = |v: &str| self.values.iter().any(|x| x == v);
        match self.op {
            Operator::In | Operator::Equals | Operator::DoubleEquals => got.is_some_and(has_value),
            Operator::NotIn | Operator::NotEquals => got.is_none_or(|v| !has_value(v)),
            Operator::Exists => got.is_some(),
            Operator::DoesNotExist => got.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(Ok(have)) = got.map(str::parse::<i64>) else {
                    return false;
                };
                let [want] = self.values.as_slice() else {
                    return false;
                };
                let Ok(want) = want.parse::<i64>() else {
                    return false;
                };
                if self.op == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

/// `Requirement.String()`: `key=v`, `key in (a,b)`, `!key`, with several values printed sorted.
impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.op == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let (op, paren) = match self.op {
            Operator::Equals => ("=", false),
            Operator::DoubleEquals => ("==", false),
            Operator::NotEquals => ("!=", false),
            Operator::In => (" in ", true),
            Operator::NotIn => (" notin ", true),
            Operator::GreaterThan => (">", false),
            Operator::LessThan => ("<", false),
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
        };
        f.write_str(op)?;
        if paren {
            f.write_str("(")?;
        }
        let mut values: Vec<&str> = self.values.iter().map(String::as_str).collect();
        values.sort_unstable();
        f.write_str(&values.join(","))?;
        if paren {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A parsed label selector: the AND of its requirements, kept sorted by key.
///
/// Besides the usual selectors there is "nothing" (what a missing `metav1.LabelSelector` converts to), which
/// matches no object and prints as the empty string.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl LabelSelector {
    /// The selector that matches every object (`labels.Everything()`).
    pub fn everything() -> Self {
        Self::default()
    }

    /// The selector that matches no object (`labels.Nothing()`).
    pub fn nothing() -> Self {
        Self {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Parses the string form used in `?labelSelector=` (`labels.Parse`), with Kubernetes' error messages.
    pub fn parse(s: &str) -> Result<Self> {
        let mut parser = Parser { items: lex(s), pos: 0 };
        let mut requirements = parser.parse().map_err(Error::LabelSelector)?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self {
            requirements,
            nothing: false,
        })
    }

    /// Converts a `metav1.LabelSelector` object (`matchLabels` and `matchExpressions` with `In`, `NotIn`,
    /// `Exists`, `DoesNotExist`), as `metav1.LabelSelectorAsSelector` does: `null` selects nothing, `{}` selects
    /// everything.
    pub fn from_object(v: &Value) -> Result<Self> {
        let obj = match v {
            Value::Null => return Ok(Self::nothing()),
            Value::Object(obj) => obj,
            other => {
                return Err(Error::LabelSelectorObject(format!(
                    "invalid label selector: expected an object, got {other}"
                )));
            }
        };
        let mut requirements = Vec::new();
        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (key, value) in labels {
                    let value = value.as_str().ok_or_else(|| {
                        Error::LabelSelectorObject(format!(
                            "invalid label selector: matchLabels[{key}] must be a string"
                        ))
                    })?;
                    let r = new_requirement(key, Operator::Equals, vec![value.to_string()])
                        .map_err(Error::LabelSelectorObject)?;
                    requirements.push(r);
                }
            }
            Some(_) => {
                return Err(Error::LabelSelectorObject(
                    "invalid label selector: matchLabels must be an object".to_string(),
                ));
            }
        }
        match obj.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for expr in exprs {
                    requirements.push(expression_requirement(expr)?);
                }
            }
            Some(_) => {
                return Err(Error::LabelSelectorObject(
                    "invalid label selector: matchExpressions must be a list".to_string(),
                ));
            }
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self {
            requirements,
            nothing: false,
        })
    }

    /// The selector that matches exactly the given labels (`labels.SelectorFromValidatedSet`, no validation),
    /// e.g. a Service's `spec.selector`. Non-string values are compared as empty strings.
    pub fn from_map(labels: &Map<String, Value>) -> Self {
        let mut requirements: Vec<Requirement> = labels
            .iter()
            .map(|(k, v)| Requirement {
                key: k.clone(),
                op: Operator::Equals,
                values: vec![v.as_str().unwrap_or("").to_string()],
            })
            .collect();
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Self {
            requirements,
            nothing: false,
        }
    }

    /// Whether a label set (an object's `metadata.labels`) satisfies every requirement.
    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether an object's `metadata.labels` (absent means no labels) satisfies the selector.
    pub fn matches_object(&self, obj: &Value) -> bool {
        let empty = Map::new();
        let labels = obj
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        self.matches(labels)
    }

    /// Whether the selector does not restrict anything (`Selector.Empty()`; false for "nothing").
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// `metav1.FormatLabelSelector`: the string form, or `<none>` when it is empty.
    ///
    /// [`Display`](fmt::Display) gives the bare `Selector.String()` form (empty for an empty selector), which is
    /// what a Deployment's wide SELECTOR column and Scale's `status.selector` carry.
    pub fn to_string_form(&self) -> String {
        let s = self.to_string();
        if s.is_empty() { "<none>".to_string() } else { s }
    }
}

/// `Selector.String()`: requirements joined by `,` (empty for everything and for nothing).
impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// One `matchExpressions` entry to a requirement, with `LabelSelectorAsSelector`'s operator check.
fn expression_requirement(expr: &Value) -> Result<Requirement> {
    let key = expr.get("key").and_then(Value::as_str).unwrap_or("");
    let op_name = expr.get("operator").and_then(Value::as_str).unwrap_or("");
    let op = match op_name {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        other => {
            return Err(Error::LabelSelectorObject(format!(
                "{} is not a valid label selector operator",
                go_quote(other)
            )));
        }
    };
    let values = match expr.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(vs)) => vs
            .iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    Error::LabelSelectorObject(format!("invalid label selector: values of {key} must be strings"))
                })
            })
            .collect::<Result<Vec<_>>>()?,
        Some(_) => {
            return Err(Error::LabelSelectorObject(format!(
                "invalid label selector: values of {key} must be a list"
            )));
        }
    };
    new_requirement(key, op, values).map_err(Error::LabelSelectorObject)
}

/// `labels.NewRequirement` with no field path: validation errors aggregated into one message.
fn new_requirement(key: &str, op: Operator, values: Vec<String>) -> std::result::Result<Requirement, String> {
    let mut errs: Vec<String> = Vec::new();
    let key_errs = qualified_name_errors(key);
    if !key_errs.is_empty() {
        errs.push(format!(
            "key: Invalid value: {}: {}",
            go_quote(key),
            key_errs.join("; ")
        ));
    }
    let values_invalid = |detail: &str| format!("values: Invalid value: {}: {detail}", go_string_slice(&values));
    match op {
        Operator::In | Operator::NotIn if values.is_empty() => {
            errs.push(values_invalid("for 'in', 'notin' operators, values set can't be empty"));
        }
        Operator::Equals | Operator::DoubleEquals | Operator::NotEquals if values.len() != 1 => {
            errs.push(values_invalid("exact-match compatibility requires one single value"));
        }
        Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
            errs.push(values_invalid("values set must be empty for exists and does not exist"));
        }
        Operator::GreaterThan | Operator::LessThan => {
            if values.len() != 1 {
                errs.push(values_invalid(
                    "for 'Gt', 'Lt' operators, exactly one value is required",
                ));
            }
            for (i, v) in values.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    errs.push(format!(
                        "values[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                        go_quote(v)
                    ));
                }
            }
        }
        _ => {}
    }
    for (i, v) in values.iter().enumerate() {
        let value_errs = label_value_errors(v);
        if !value_errs.is_empty() {
            errs.push(format!(
                "values[{i}][{key}]: Invalid value: {}: {}",
                go_quote(v),
                value_errs.join("; ")
            ));
        }
    }
    if errs.is_empty() {
        Ok(Requirement {
            key: key.to_string(),
            op,
            values,
        })
    } else {
        Err(aggregate(errs))
    }
}

/// `utilerrors.Aggregate.Error()`: one message as is, several de-duplicated inside `[...]`.
fn aggregate(errs: Vec<String>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for e in errs {
        if !seen.contains(&e) {
            seen.push(e);
        }
    }
    if seen.len() == 1 {
        seen.swap_remove(0)
    } else {
        format!("[{}]", seen.join(", "))
    }
}

// --- lexer and parser (`labels.Lexer`, `labels.Parser`) --------------------------------------------------------

/// Tokens of the label selector grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Error,
    End,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

/// The literal tokens (everything but identifiers, end of string and errors).
fn literal_token(s: &str) -> Option<Tok> {
    Some(match s {
        ")" => Tok::ClosedPar,
        "," => Tok::Comma,
        "!" => Tok::DoesNotExist,
        "==" => Tok::DoubleEquals,
        "=" => Tok::Equals,
        ">" => Tok::GreaterThan,
        "in" => Tok::In,
        "<" => Tok::LessThan,
        "!=" => Tok::NotEquals,
        "notin" => Tok::NotIn,
        "(" => Tok::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Splits a selector into tokens, ending with [`Tok::End`]. Special symbols are matched greedily as the longest
/// literal token (`!=`, `==`); identifiers run up to whitespace or a special symbol.
///
/// Every slice below starts and ends at an end of the string or next to an ASCII whitespace or special byte, so
/// it falls on a `char` boundary and cannot panic.
fn lex(s: &str) -> Vec<(Tok, String)> {
    let b = s.as_bytes();
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        while pos < b.len() && is_whitespace(b[pos]) {
            pos += 1;
        }
        if pos >= b.len() {
            out.push((Tok::End, String::new()));
            return out;
        }
        let start = pos;
        if is_special(b[pos]) {
            let mut last: Option<(Tok, usize)> = None;
            while pos < b.len() && is_special(b[pos]) {
                pos += 1;
                if let Some(tok) = literal_token(&s[start..pos]) {
                    last = Some((tok, pos));
                } else if last.is_some() {
                    break;
                }
            }
            match last {
                Some((tok, end)) => {
                    out.push((tok, s[start..end].to_string()));
                    pos = end;
                }
                None => out.push((
                    Tok::Error,
                    format!("error expected: keyword found '{}'", &s[start..pos]),
                )),
            }
        } else {
            while pos < b.len() && !is_special(b[pos]) && !is_whitespace(b[pos]) {
                pos += 1;
            }
            let lit = &s[start..pos];
            out.push((literal_token(lit).unwrap_or(Tok::Identifier), lit.to_string()));
        }
    }
}

/// Recursive-descent parser over the scanned tokens, with the `KeyAndOperator` / `Values` contexts: in a values
/// context `in` and `notin` are plain identifiers.
struct Parser {
    items: Vec<(Tok, String)>,
    pos: usize,
}

impl Parser {
    fn peek(&self, values: bool) -> (Tok, String) {
        let (tok, lit) = self.items.get(self.pos).cloned().unwrap_or((Tok::End, String::new()));
        (contextual(tok, values), lit)
    }

    fn next(&mut self, values: bool) -> (Tok, String) {
        let item = self.peek(values);
        self.pos += 1;
        item
    }

    fn parse(&mut self) -> std::result::Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            let (tok, lit) = self.peek(true);
            match tok {
                Tok::Identifier | Tok::DoesNotExist => {
                    let r = self
                        .parse_requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(r);
                    let (t, l) = self.next(true);
                    match t {
                        Tok::End => return Ok(requirements),
                        Tok::Comma => {
                            let (t2, l2) = self.peek(true);
                            if t2 != Tok::Identifier && t2 != Tok::DoesNotExist {
                                return Err(format!("found '{l2}', expected: identifier after ','"));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Tok::End => return Ok(requirements),
                _ => return Err(format!("found '{lit}', expected: !, identifier, or 'end of string'")),
            }
        }
    }

    fn parse_requirement(&mut self) -> std::result::Result<Requirement, String> {
        let (key, op) = self.parse_key_and_infer_operator()?;
        if let Some(op @ (Operator::Exists | Operator::DoesNotExist)) = op {
            return new_requirement(&key, op, Vec::new());
        }
        let op = self.parse_operator()?;
        let values = match op {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        new_requirement(&key, op, values.into_iter().collect())
    }

    fn parse_key_and_infer_operator(&mut self) -> std::result::Result<(String, Option<Operator>), String> {
        let mut op = None;
        let (mut tok, mut lit) = self.next(true);
        if tok == Tok::DoesNotExist {
            op = Some(Operator::DoesNotExist);
            (tok, lit) = self.next(true);
        }
        if tok != Tok::Identifier {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        let errs = qualified_name_errors(&lit);
        if !errs.is_empty() {
            // The parser validates keys with a nil field path, which Kubernetes prints as "<nil>".
            return Err(format!("<nil>: Invalid value: {}: {}", go_quote(&lit), errs.join("; ")));
        }
        let (t, _) = self.peek(true);
        if (t == Tok::End || t == Tok::Comma) && op != Some(Operator::DoesNotExist) {
            op = Some(Operator::Exists);
        }
        Ok((lit, op))
    }

    fn parse_operator(&mut self) -> std::result::Result<Operator, String> {
        let (tok, lit) = self.next(false);
        Ok(match tok {
            Tok::In => Operator::In,
            Tok::Equals => Operator::Equals,
            Tok::DoubleEquals => Operator::DoubleEquals,
            Tok::GreaterThan => Operator::GreaterThan,
            Tok::LessThan => Operator::LessThan,
            Tok::NotIn => Operator::NotIn,
            Tok::NotEquals => Operator::NotEquals,
            _ => return Err(format!("found '{lit}', expected: in, notin, =, ==, !=, gt, lt")),
        })
    }

    fn parse_values(&mut self) -> std::result::Result<BTreeSet<String>, String> {
        let (tok, lit) = self.next(true);
        if tok != Tok::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.peek(true);
        match tok {
            Tok::Identifier | Tok::Comma => {
                let set = self.parse_identifiers_list()?;
                let (t, _) = self.next(true);
                if t != Tok::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(set)
            }
            Tok::ClosedPar => {
                self.next(true);
                Ok(BTreeSet::from([String::new()]))
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn parse_identifiers_list(&mut self) -> std::result::Result<BTreeSet<String>, String> {
        let mut set = BTreeSet::new();
        loop {
            let (tok, lit) = self.next(true);
            match tok {
                Tok::Identifier => {
                    set.insert(lit);
                    let (t2, l2) = self.peek(true);
                    match t2 {
                        Tok::Comma => {}
                        Tok::ClosedPar => return Ok(set),
                        _ => return Err(format!("found '{l2}', expected: ',' or ')'")),
                    }
                }
                Tok::Comma => {
                    // "(," and ",)" and ",," each stand for an empty value.
                    if set.is_empty() {
                        set.insert(String::new());
                    }
                    let (t2, _) = self.peek(true);
                    if t2 == Tok::ClosedPar {
                        set.insert(String::new());
                        return Ok(set);
                    }
                    if t2 == Tok::Comma {
                        self.next(true);
                        set.insert(String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn parse_exact_value(&mut self) -> std::result::Result<BTreeSet<String>, String> {
        let (tok, _) = self.peek(true);
        if tok == Tok::End || tok == Tok::Comma {
            return Ok(BTreeSet::from([String::new()]));
        }
        let (tok, lit) = self.next(true);
        if tok == Tok::Identifier {
            Ok(BTreeSet::from([lit]))
        } else {
            Err(format!("found '{lit}', expected: identifier"))
        }
    }
}

/// In a values context the keywords `in` and `notin` are identifiers.
fn contextual(tok: Tok, values: bool) -> Tok {
    if values && matches!(tok, Tok::In | Tok::NotIn) {
        Tok::Identifier
    } else {
        tok
    }
}

// --- key and value validation (`k8s.io/apimachinery/pkg/util/validation`) -----------------------------------

const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_MSG: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// `validation.RegexError`: the message, examples and the regex used.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let examples: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!(
        "{msg} (e.g. {}regex used for validation is '{fmt}')",
        examples.join(" or ")
    )
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, anchored.
fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_alphanumeric()
                && l.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// `validation.IsDNS1123Subdomain`.
fn dns1123_subdomain_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        matches!((b.first(), b.last()), (Some(f), Some(e)) if alnum(f) && alnum(e))
            && b.iter().all(|c| alnum(c) || *c == b'-')
    };
    if !s.split('.').all(label_ok) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_MSG,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// `validation.IsQualifiedName`: an optional DNS subdomain prefix and `/`, then a name of at most 63 characters.
fn qualified_name_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    dns1123_subdomain_errors(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_MSG,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".to_string());
    }
    if !is_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// `validation.IsValidLabelValue`: empty, or a qualified name part of at most 63 characters.
fn label_value_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        errs.push(regex_error(
            LABEL_VALUE_MSG,
            &format!("({QUALIFIED_NAME_FMT})?"),
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// Go's `%q` for a string, for the ASCII escapes that matter in selector messages.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%#v` for a `[]string`: `[]string{"a", "b"}`.
fn go_string_slice(values: &[String]) -> String {
    let items: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
    format!("[]string{{{}}}", items.join(", "))
}

// ---------------------------------------------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------------------------------------------

/// The operator of one field selector term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOperator {
    /// `field=value` or `field==value`.
    Equals,
    /// `field!=value`.
    NotEquals,
}

/// One term of a field selector, with its value unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    field: String,
    op: FieldOperator,
    value: String,
}

impl FieldRequirement {
    /// The field label, e.g. `spec.nodeName`.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The operator.
    pub fn operator(&self) -> FieldOperator {
        self.op
    }

    /// The value the field is compared with.
    pub fn value(&self) -> &str {
        &self.value
    }
}

/// A parsed field selector (`metadata.name=x,spec.nodeName!=`): the AND of its terms.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    terms: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parses a field selector as `fields.ParseSelector` does: terms split on unescaped commas and sorted, each
    /// split at its first `!=`, `==` or `=`; values may escape `\`, `,` and `=` with a backslash.
    pub fn parse(s: &str) -> Result<Self> {
        let mut parts = split_terms(s);
        parts.sort_unstable();
        let mut terms = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let Some((field, op, rhs)) = split_term(part) else {
                return Err(Error::FieldSelector(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            terms.push(FieldRequirement {
                field: field.to_string(),
                op,
                value: unescape_value(rhs)?,
            });
        }
        Ok(Self { terms })
    }

    /// Checks every field label is one this kind indexes, as the API server's field label conversion does;
    /// the error names the first unsupported label like Kubernetes: `field label not supported: foo`.
    pub fn check_supported(&self, res: &ResourceDef) -> Result<()> {
        for t in &self.terms {
            if !is_supported_field(res, &t.field) {
                return Err(Error::UnsupportedField(t.field.clone()));
            }
        }
        Ok(())
    }

    /// Whether an object satisfies every term. Fields missing from the object compare as `""` (booleans as
    /// `false`, counters as `0`), as in the API server's selectable field sets.
    pub fn matches(&self, res: &ResourceDef, obj: &Value) -> bool {
        self.terms.iter().all(|t| {
            let got = field_value(res, obj, &t.field);
            match t.op {
                FieldOperator::Equals => got == t.value,
                FieldOperator::NotEquals => got != t.value,
            }
        })
    }

    /// The name required by an `=`/`==` term on `metadata.name`, if any (`RequiresExactMatch`); used to
    /// narrow single-object watches.
    pub fn pinned_name(&self) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == "metadata.name" && t.op == FieldOperator::Equals)
            .map(|t| t.value.as_str())
    }

    /// Whether the selector has no terms (matches everything).
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The terms, in the sorted order they were parsed in.
    pub fn terms(&self) -> &[FieldRequirement] {
        &self.terms
    }
}

/// `Selector.String()`: terms as `field=value` / `field!=value` with values re-escaped, joined by `,`.
impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = match t.op {
                FieldOperator::Equals => "=",
                FieldOperator::NotEquals => "!=",
            };
            write!(f, "{}{op}{}", t.field, escape_value(&t.value))?;
        }
        Ok(())
    }
}

/// Splits on commas not preceded by a backslash escape.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Splits one term at the first operator, trying `!=`, `==`, `=` at each position.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, kind) in [
            ("!=", FieldOperator::NotEquals),
            ("==", FieldOperator::Equals),
            ("=", FieldOperator::Equals),
        ] {
            if let Some(rhs) = rest.strip_prefix(op) {
                return Some((&term[..i], kind, rhs));
            }
        }
    }
    None
}

/// `fields.EscapeValue`.
fn escape_value(s: &str) -> String {
    s.replace('\\', "\\\\").replace(',', "\\,").replace('=', "\\=")
}

/// `fields.UnescapeValue`: only `\\`, `\,` and `\=` are escapes; bare `,` and `=` are errors.
fn unescape_value(s: &str) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                other => {
                    return Err(Error::FieldSelector(format!(
                        "invalid field selector: invalid escape sequence: \\{other}"
                    )));
                }
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            // Go prints the rune with %v, i.e. as its number.
            ',' | '=' => {
                return Err(Error::FieldSelector(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                )));
            }
            c => out.push(c),
        }
    }
    if in_slash {
        return Err(Error::FieldSelector(
            "invalid field selector: invalid escape sequence: \\".to_string(),
        ));
    }
    Ok(out)
}

/// The field labels a kind accepts besides `metadata.name` (and `metadata.namespace` when namespaced), per the
/// API server's field label conversion functions.
pub fn supported_field_labels(res: &ResourceDef) -> &'static [&'static str] {
    match (res.group, res.kind) {
        ("", "Pod") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        ],
        ("", "Event") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("", "Secret") => &["type"],
        ("", "Node") => &["spec.unschedulable"],
        ("", "Namespace") => &["status.phase"],
        ("", "Service") => &["spec.clusterIP", "spec.type"],
        ("apps", "ReplicaSet") => &["status.replicas"],
        ("batch", "Job") => &["status.successful"],
        _ => &[],
    }
}

fn is_supported_field(res: &ResourceDef, field: &str) -> bool {
    match field {
        "metadata.name" => true,
        // Node and Namespace conversions accept only metadata.name of the metadata fields.
        "metadata.namespace" => res.namespaced,
        // Old v1 clients send spec.host; the Pod conversion maps it to spec.nodeName.
        "spec.host" => res.group.is_empty() && res.kind == "Pod",
        other => supported_field_labels(res).contains(&other),
    }
}

/// The value of a field label in an object, as the kind's `ToSelectableFields` computes it.
fn field_value(res: &ResourceDef, obj: &Value, field: &str) -> String {
    let s = |ptr: &str| obj.pointer(ptr).and_then(Value::as_str).unwrap_or("").to_string();
    let boolean = |ptr: &str| obj.pointer(ptr).and_then(Value::as_bool).unwrap_or(false).to_string();
    let int = |ptr: &str| obj.pointer(ptr).and_then(Value::as_i64).unwrap_or(0).to_string();
    match field {
        "metadata.name" => return s("/metadata/name"),
        "metadata.namespace" if res.namespaced => return s("/metadata/namespace"),
        _ => {}
    }
    match (res.group, res.kind, field) {
        ("", "Pod", "spec.nodeName" | "spec.host") => s("/spec/nodeName"),
        ("", "Pod", "spec.restartPolicy") => s("/spec/restartPolicy"),
        ("", "Pod", "spec.schedulerName") => s("/spec/schedulerName"),
        ("", "Pod", "spec.serviceAccountName") => s("/spec/serviceAccountName"),
        ("", "Pod", "spec.hostNetwork") => boolean("/spec/hostNetwork"),
        ("", "Pod", "status.phase") => s("/status/phase"),
        // The internal type keeps only status.podIPs; the v1 conversion fills it from podIP when needed.
        ("", "Pod", "status.podIP") => obj
            .pointer("/status/podIPs/0/ip")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| s("/status/podIP")),
        ("", "Pod", "status.nominatedNodeName") => s("/status/nominatedNodeName"),
        // status.podIPs is accepted by the conversion but absent from the pod's selectable fields, so the API
        // server compares it as "".
        ("", "Event", "involvedObject.kind") => s("/involvedObject/kind"),
        ("", "Event", "involvedObject.namespace") => s("/involvedObject/namespace"),
        ("", "Event", "involvedObject.name") => s("/involvedObject/name"),
        ("", "Event", "involvedObject.uid") => s("/involvedObject/uid"),
        ("", "Event", "involvedObject.apiVersion") => s("/involvedObject/apiVersion"),
        ("", "Event", "involvedObject.resourceVersion") => s("/involvedObject/resourceVersion"),
        ("", "Event", "involvedObject.fieldPath") => s("/involvedObject/fieldPath"),
        ("", "Event", "reason") => s("/reason"),
        ("", "Event", "reportingComponent") => s("/reportingComponent"),
        ("", "Event", "source") => {
            let component = s("/source/component");
            if component.is_empty() {
                s("/reportingComponent")
            } else {
                component
            }
        }
        ("", "Event", "type") => s("/type"),
        ("", "Secret", "type") => s("/type"),
        ("", "Node", "spec.unschedulable") => boolean("/spec/unschedulable"),
        ("", "Namespace", "status.phase") => s("/status/phase"),
        ("", "Service", "spec.clusterIP") => s("/spec/clusterIP"),
        ("", "Service", "spec.type") => s("/spec/type"),
        ("apps", "ReplicaSet", "status.replicas") => int("/status/replicas"),
        ("batch", "Job", "status.successful") => int("/status/succeeded"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::registry::by_kind;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("labels are an object")
    }

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).expect("selector parses")
    }

    fn parse_err(s: &str) -> String {
        LabelSelector::parse(s)
            .expect_err("selector must not parse")
            .to_string()
    }

    fn res(api_version: &str, kind: &str) -> &'static ResourceDef {
        by_kind(api_version, kind).expect("kind registered")
    }

    #[test]
    fn parses_every_operator() {
        let cases = [
            ("a=b", "a=b"),
            ("a==b", "a==b"),
            ("a!=b", "a!=b"),
            ("a in (y, x)", "a in (x,y)"),
            ("a notin (x)", "a notin (x)"),
            ("a", "a"),
            ("!a", "!a"),
            ("a>5", "a>5"),
            ("a<5", "a<5"),
            (
                "  z = 1 ,  b , ! c,app.kubernetes.io/name in (web)  ",
                "app.kubernetes.io/name in (web),b,!c,z=1",
            ),
            ("x in (in,notin)", "x in (in,notin)"),
            ("a=", "a="),
            ("a in ()", "a in ()"),
            ("a in (,b)", "a in (,b)"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(sel(input).to_string(), want, "input {input:?}");
        }
        let env = sel("env in (prod,dev)");
        let r = &env.requirements()[0];
        assert_eq!((r.key(), r.operator()), ("env", Operator::In));
        assert_eq!(r.values(), ["dev", "prod"]);
        assert!(sel("").is_empty());
        assert!(!sel("a").is_empty());
    }

    #[test]
    fn parse_errors_read_like_kubernetes() {
        assert_eq!(parse_err("a=b,"), "found '', expected: identifier after ','");
        assert_eq!(
            parse_err("a b"),
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(
            parse_err("=a"),
            "found '=', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            parse_err("a in x"),
            "unable to parse requirement: found 'x' expected: '('"
        );
        assert_eq!(
            parse_err("a in (x"),
            "unable to parse requirement: found '', expected: ',' or ')'"
        );
        assert_eq!(parse_err("a=b c"), "found 'c', expected: ',' or 'end of string'");
        assert_eq!(
            parse_err("a=(b)"),
            "unable to parse requirement: found '(', expected: identifier"
        );
        assert_eq!(
            parse_err("-a=b"),
            "unable to parse requirement: <nil>: Invalid value: \"-a\": name part must consist of alphanumeric \
             characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  \
             or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        );
        assert_eq!(
            parse_err("Example.com/a=b"),
            "unable to parse requirement: <nil>: Invalid value: \"Example.com/a\": prefix part a lowercase RFC 1123 \
             subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with \
             an alphanumeric character (e.g. 'example.com', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        );
        assert_eq!(
            parse_err("a=b_"),
            "unable to parse requirement: values[0][a]: Invalid value: \"b_\": a valid label must be an empty \
             string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an \
             alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is \
             '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        );
        assert_eq!(
            parse_err("a>x"),
            "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value \
             must be an integer"
        );
        assert!(parse_err(&format!("{}=b", "k".repeat(64))).contains("name part must be no more than 63 characters"));
        assert!(parse_err("a/b/c").contains("a qualified name must consist of"));
    }

    #[test]
    fn matches_like_kubernetes() {
        let l = labels(json!({"app": "web", "tier": "front", "n": "7"}));
        let yes = [
            "app=web",
            "app==web",
            "app!=db",
            "app in (web,db)",
            "app notin (db)",
            "app",
            "!missing",
            "missing!=x",
            "missing notin (x)",
            "n>5",
            "n<8",
            "app=web,tier=front",
            "",
        ];
        let no = [
            "app=db",
            "app!=web",
            "app in (db)",
            "app notin (web)",
            "missing",
            "!app",
            "missing=x",
            "missing in (x)",
            "n>7",
            "app>1",
            "missing<1",
            "app=web,tier=back",
        ];
        for s in yes {
            assert!(sel(s).matches(&l), "{s:?} should match");
        }
        for s in no {
            assert!(!sel(s).matches(&l), "{s:?} should not match");
        }
        assert!(sel("app=").matches(&labels(json!({"app": ""}))));
        assert!(!LabelSelector::nothing().matches(&l));
        assert!(LabelSelector::everything().matches(&l));
        assert!(sel("app=web").matches_object(&json!({"metadata": {"labels": {"app": "web"}}})));
        assert!(!sel("app=web").matches_object(&json!({"metadata": {}})));
    }

    #[test]
    fn from_object_converts_match_labels_and_expressions() {
        let s = LabelSelector::from_object(&json!({
            "matchLabels": {"tier": "front", "app": "web"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                {"key": "track", "operator": "NotIn", "values": ["canary"]},
                {"key": "gpu", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist"},
            ],
        }))
        .expect("selector converts");
        assert_eq!(
            s.to_string(),
            "app=web,env in (dev,prod),gpu,!legacy,tier=front,track notin (canary)"
        );
        let l = labels(json!({"app": "web", "tier": "front", "env": "dev", "gpu": "1"}));
        assert!(s.matches(&l));
        assert!(!s.matches(&labels(json!({"app": "web", "tier": "front", "env": "qa", "gpu": "1"}))));

        let all = LabelSelector::from_object(&json!({})).expect("empty selector converts");
        assert!(all.is_empty() && all.matches(&l));
        let none = LabelSelector::from_object(&Value::Null).expect("null selector converts");
        assert!(!none.is_empty() && !none.matches(&l));

        let bad_op = LabelSelector::from_object(&json!({"matchExpressions": [{"key": "a", "operator": "Gt"}]}));
        assert_eq!(
            bad_op.expect_err("Gt is not a metav1 operator").to_string(),
            "\"Gt\" is not a valid label selector operator"
        );
        let empty_in = LabelSelector::from_object(&json!({"matchExpressions": [{"key": "a", "operator": "In"}]}));
        assert_eq!(
            empty_in.expect_err("In needs values").to_string(),
            "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"
        );
        let exists_values = LabelSelector::from_object(
            &json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x", "y"]}]}),
        );
        assert_eq!(
            exists_values.expect_err("Exists takes no values").to_string(),
            "values: Invalid value: []string{\"x\", \"y\"}: values set must be empty for exists and does not exist"
        );
        let bad_key = LabelSelector::from_object(&json!({"matchLabels": {"a b": "c"}}));
        assert!(
            bad_key
                .expect_err("key has a space")
                .to_string()
                .starts_with("key: Invalid value: \"a b\": name part")
        );
    }

    #[test]
    fn string_form_matches_format_label_selector() {
        let obj = |v: Value| LabelSelector::from_object(&v).expect("selector converts");
        assert_eq!(
            obj(json!({"matchLabels": {"app": "nginx"}})).to_string_form(),
            "app=nginx"
        );
        assert_eq!(obj(json!({})).to_string_form(), "<none>");
        assert_eq!(obj(Value::Null).to_string_form(), "<none>");
        assert_eq!(obj(Value::Null).to_string(), "");
        assert_eq!(
            obj(json!({"matchLabels": {"b": "2", "a": "1"}, "matchExpressions": [{"key": "a", "operator": "Exists"}]}))
                .to_string_form(),
            "a=1,a,b=2"
        );
        assert_eq!(
            LabelSelector::from_map(&labels(json!({"z": "1", "app": "web"}))).to_string(),
            "app=web,z=1"
        );
    }

    #[test]
    fn field_selector_parses_and_escapes() {
        let f = FieldSelector::parse("spec.nodeName!=,metadata.name==x").expect("parses");
        assert_eq!(f.to_string(), "metadata.name=x,spec.nodeName!=");
        assert_eq!(f.terms()[1].operator(), FieldOperator::NotEquals);
        assert_eq!(f.pinned_name(), Some("x"));
        assert!(FieldSelector::parse("").expect("empty parses").is_empty());
        assert_eq!(
            FieldSelector::parse("metadata.name!=x").expect("parses").pinned_name(),
            None
        );

        let escaped = FieldSelector::parse(r"metadata.name=a\,b\=c\\d").expect("escapes parse");
        assert_eq!(escaped.terms()[0].value(), r"a,b=c\d");
        assert_eq!(escaped.to_string(), r"metadata.name=a\,b\=c\\d");

        let err = |s: &str| FieldSelector::parse(s).expect_err("must not parse").to_string();
        assert_eq!(
            err("metadata.name"),
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
        );
        assert_eq!(err(r"a=b\x"), r"invalid field selector: invalid escape sequence: \x");
        assert_eq!(err("a=b=c"), "invalid field selector: unescaped character in value: 61");
        assert_eq!(err(r"a=b\"), r"invalid field selector: invalid escape sequence: \");
    }

    #[test]
    fn field_labels_supported_per_kind() {
        let pods = res("v1", "Pod");
        let ok = FieldSelector::parse("spec.nodeName=n1,status.phase=Running,spec.host=n1,metadata.namespace=d")
            .expect("parses");
        assert!(ok.check_supported(pods).is_ok());
        let bad = FieldSelector::parse("metadata.name=x,foo=bar").expect("parses");
        assert_eq!(
            bad.check_supported(pods).expect_err("foo is unsupported").to_string(),
            "field label not supported: foo"
        );
        let ns = FieldSelector::parse("metadata.namespace=x").expect("parses");
        assert!(ns.check_supported(res("v1", "Node")).is_err());
        assert!(ns.check_supported(res("apps/v1", "Deployment")).is_ok());
        let rs = FieldSelector::parse("status.replicas=0").expect("parses");
        assert!(rs.check_supported(res("apps/v1", "ReplicaSet")).is_ok());
        assert!(rs.check_supported(res("apps/v1", "Deployment")).is_err());
        for (kind_av, kind, sel) in [
            (
                "v1",
                "Event",
                "involvedObject.uid=u,reportingComponent=c,source=s,type=Normal,reason=r",
            ),
            ("v1", "Secret", "type=Opaque"),
            ("v1", "Namespace", "status.phase=Active"),
            ("v1", "Node", "spec.unschedulable=true"),
            ("batch/v1", "Job", "status.successful=1"),
            ("v1", "Service", "spec.clusterIP=None,spec.type=ClusterIP"),
        ] {
            let f = FieldSelector::parse(sel).expect("parses");
            assert!(f.check_supported(res(kind_av, kind)).is_ok(), "{kind}: {sel}");
        }
    }

    #[test]
    fn field_selector_matches_objects() {
        let pods = res("v1", "Pod");
        let pod = json!({
            "metadata": {"name": "web-0", "namespace": "default"},
            "spec": {"nodeName": "n1", "restartPolicy": "Always"},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.5"}]},
        });
        let m = |s: &str| FieldSelector::parse(s).expect("parses").matches(pods, &pod);
        assert!(m("metadata.name=web-0,metadata.namespace=default"));
        assert!(m("spec.nodeName=n1") && m("spec.host=n1") && !m("spec.nodeName!=n1"));
        assert!(m("spec.hostNetwork=false") && !m("spec.hostNetwork=true"));
        assert!(m("status.podIP=10.0.0.5") && m("status.nominatedNodeName="));
        assert!(m("spec.schedulerName!=default-scheduler"));
        assert!(m(""));

        let node = json!({"metadata": {"name": "n1"}, "spec": {"unschedulable": true}});
        let nodes = res("v1", "Node");
        assert!(
            FieldSelector::parse("spec.unschedulable=true")
                .expect("parses")
                .matches(nodes, &node)
        );

        let ev = json!({
            "metadata": {"name": "e", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web-0"},
            "reportingComponent": "kubelet", "type": "Warning",
        });
        let events = res("v1", "Event");
        let em = |s: &str| FieldSelector::parse(s).expect("parses").matches(events, &ev);
        assert!(em("involvedObject.kind=Pod,involvedObject.name=web-0,type=Warning"));
        assert!(em("source=kubelet") && em("reportingComponent=kubelet"));

        let rs = json!({"metadata": {"name": "r"}, "status": {}});
        assert!(
            FieldSelector::parse("status.replicas=0")
                .expect("parses")
                .matches(res("apps/v1", "ReplicaSet"), &rs)
        );
    }
}
