//! The `fields=` selection syntax: `a,b,children{id,media_type}` (braces raw or %-decoded
//! already), parsed into a tree. Modifiers such as `.limit(…)` are rejected as syntax errors.

/// One requested field, with its nested selection if it had braces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Field {
    pub(crate) name: String,
    pub(crate) nested: Option<Vec<Field>>,
}

struct Parser<'a> {
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        while self.chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
    }

    fn list(&mut self, depth: usize) -> Result<Vec<Field>, String> {
        if depth > 8 {
            return Err("fields are nested too deeply".into());
        }
        let mut out: Vec<Field> = Vec::new();
        loop {
            self.skip_space();
            match self.chars.peek() {
                None => return Ok(out),
                Some((_, '}')) => return Ok(out),
                Some((_, ',')) => {
                    self.chars.next();
                    continue;
                }
                _ => {}
            }
            let field = self.field(depth)?;
            if !out.iter().any(|f| f.name == field.name) {
                out.push(field);
            }
            self.skip_space();
            match self.chars.peek() {
                None | Some((_, '}')) => return Ok(out),
                Some((_, ',')) => {
                    self.chars.next();
                }
                Some(&(i, c)) => {
                    return Err(format!(
                        "Syntax error \"Unexpected '{c}'\" at character {i}"
                    ));
                }
            }
        }
    }

    fn field(&mut self, depth: usize) -> Result<Field, String> {
        let mut name = String::new();
        while let Some((_, c)) = self
            .chars
            .next_if(|(_, c)| c.is_ascii_alphanumeric() || *c == '_')
        {
            name.push(c);
        }
        if name.is_empty() {
            return Err(match self.chars.peek() {
                Some(&(i, c)) => format!("Syntax error \"Unexpected '{c}'\" at character {i}"),
                None => "Syntax error \"Expected a field name\"".into(),
            });
        }
        self.skip_space();
        let nested = if self.chars.next_if(|(_, c)| *c == '{').is_some() {
            let inner = self.list(depth + 1)?;
            if self.chars.next_if(|(_, c)| *c == '}').is_none() {
                return Err("Syntax error \"Expected '}'\"".into());
            }
            Some(inner)
        } else {
            None
        };
        Ok(Field { name, nested })
    }
}

/// Parses a `fields` value. An empty value selects nothing.
pub(crate) fn parse_fields(raw: &str) -> Result<Vec<Field>, String> {
    let mut p = Parser {
        chars: raw.char_indices().peekable(),
    };
    let fields = p.list(0)?;
    if let Some(&(i, c)) = p.chars.peek() {
        return Err(format!(
            "Syntax error \"Unexpected '{c}'\" at character {i}"
        ));
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(f: &[Field]) -> Vec<&str> {
        f.iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn nested_children() {
        let f = parse_fields("id, caption,children{id,media_type , media_url},timestamp")
            .expect("parses");
        assert_eq!(names(&f), ["id", "caption", "children", "timestamp"]);
        let nested = f[2].nested.as_ref().expect("nested");
        assert_eq!(names(nested), ["id", "media_type", "media_url"]);
        assert!(f[0].nested.is_none());
    }

    #[test]
    fn errors() {
        assert!(parse_fields("children{id").is_err());
        assert!(parse_fields("id}").is_err());
        assert!(parse_fields("children.limit(3){id}").is_err());
        assert_eq!(parse_fields("").expect("empty"), vec![]);
        assert_eq!(names(&parse_fields("id,,id").expect("dupes")), ["id"]);
    }

    proptest! {
        #[test]
        fn never_panics(s in ".*") {
            let _ = parse_fields(&s);
        }
    }
}
