//! Probe templates for launched instances: `{instance_id}`, `{private_ip}` and
//! `{public_ip}` in a probe's URL, address or command are replaced by the instance's own
//! values once it runs. Pure, so the config check and the promotion use the same rules.

use crate::config::ProbeKind;

/// The placeholders a template may use.
pub const PLACEHOLDERS: [&str; 3] = ["instance_id", "private_ip", "public_ip"];

/// What an instance fills in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    pub instance_id: String,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
}

/// Placeholders in `s` that are not known (`{region}` is a typo to report, not text to send).
pub fn unknown(s: &str) -> Vec<String> {
    let mut v = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('{') {
        let after = &rest[i + 1..];
        let Some(j) = after.find('}') else { break };
        let name = &after[..j];
        if !PLACEHOLDERS.contains(&name) {
            v.push(format!("{{{name}}}"));
        }
        rest = &after[j + 1..];
    }
    v
}

/// A placeholder an instance cannot fill.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("instance {instance} has no {what}")]
pub struct TemplateError {
    pub instance: String,
    /// `private ip`, `public ip`.
    pub what: String,
}

/// Replace the placeholders; Err names the one the instance cannot fill (no public IP).
pub fn render(s: &str, vars: &Vars) -> Result<String, TemplateError> {
    let mut out = s.replace("{instance_id}", &vars.instance_id);
    for (k, v) in [
        ("{private_ip}", &vars.private_ip),
        ("{public_ip}", &vars.public_ip),
    ] {
        if out.contains(k) {
            match v {
                Some(v) => out = out.replace(k, v),
                None => {
                    return Err(TemplateError {
                        instance: vars.instance_id.clone(),
                        what: k.trim_matches(['{', '}']).replace('_', " "),
                    });
                }
            }
        }
    }
    Ok(out)
}

/// The probe with every placeholder filled in.
pub fn render_probe(kind: &ProbeKind, vars: &Vars) -> Result<ProbeKind, TemplateError> {
    Ok(match kind {
        ProbeKind::Http {
            url,
            expect_status,
            body_contains,
            insecure,
        } => ProbeKind::Http {
            url: render(url, vars)?,
            expect_status: expect_status.clone(),
            body_contains: body_contains.clone(),
            insecure: *insecure,
        },
        ProbeKind::Tcp { address } => ProbeKind::Tcp {
            address: render(address, vars)?,
        },
        ProbeKind::Exec { command } => ProbeKind::Exec {
            command: command
                .iter()
                .map(|c| render(c, vars))
                .collect::<Result<_, _>>()?,
        },
    })
}

/// Sample values for checking a template's shape at config time.
pub fn sample() -> Vars {
    Vars {
        instance_id: "i-0123456789abcdef0".into(),
        private_ip: Some("10.0.0.1".into()),
        public_ip: Some("198.51.100.1".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_names_what_is_missing() {
        let v = Vars {
            instance_id: "i-1".into(),
            private_ip: Some("10.0.0.7".into()),
            public_ip: None,
        };
        assert_eq!(
            render("http://{private_ip}:8080/h?id={instance_id}", &v)
                .as_deref()
                .map_err(|e| e.to_string()),
            Ok("http://10.0.0.7:8080/h?id=i-1")
        );
        assert_eq!(
            render("{public_ip}:443", &v).map_err(|e| e.to_string()),
            Err("instance i-1 has no public ip".into())
        );
        assert_eq!(unknown("http://{region}/{private_ip}"), vec!["{region}"]);
        assert!(unknown("no braces").is_empty());
    }
}
