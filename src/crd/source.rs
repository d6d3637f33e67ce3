//! FloatGroup objects as the config's groups (`group_source: kubernetes`).
//!
//! Every replica lists the namespace's FloatGroups (on start, then every poll of the
//! config watcher) and [`assemble`]s them with the file's settings into one [`Spec`].
//! Objects are taken in name order, each only if the set stays valid with it: a bad
//! object (a spec that does not decode, or that fails a check alone or together with the
//! ones before it, such as a float already in another group) is rejected *alone*. Its
//! previous good spec keeps running if it had one, and the reason, naming the field, is
//! kept in [`ObjectsState`] for the status (`message`), an Event, the status API and
//! metrics. One bad object never stops the others.

use super::FloatGroupSpec;
use crate::config::{self, ConfigError, RawConfig, RawGroup, Spec};
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Errors reading the objects, and why one object is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("ListFloatGroups in namespace {namespace}: {reason}: {message}")]
    List {
        namespace: String,
        reason: String,
        message: String,
    },
    /// The spec does not decode: the field (`spec.targets[0].name`) and the reason.
    #[error("{at}: {reason}")]
    Decode { at: String, reason: String },
    /// The spec decodes but the config with it does not validate: each problem with its
    /// path in the object's words (`FloatGroup web: spec.floats[0]...`).
    #[error("{}", .0.iter().map(|(p, r)| format!("{p}: {r}")).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<(String, String)>),
}

/// One FloatGroup as read.
#[derive(Debug, Clone)]
pub struct Found {
    pub name: String,
    pub uid: Option<String>,
    pub generation: Option<i64>,
    /// The spec as a group, or why it does not decode (field path and reason).
    pub spec: Result<RawGroup, SourceError>,
    /// The spec as stored, for change detection.
    pub raw: serde_json::Value,
}

/// What runs of one object, and what was refused.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectState {
    pub uid: Option<String>,
    /// The generation whose spec runs (None: nothing of it runs).
    pub running_generation: Option<i64>,
    /// Why its newest spec is not running.
    pub rejected: Option<String>,
}

/// Shared between the source (every replica writes it) and the status publisher (the
/// leader reads it).
#[derive(Debug, Default)]
pub struct ObjectsState {
    inner: Mutex<BTreeMap<String, ObjectState>>,
}

impl ObjectsState {
    pub fn set(&self, all: BTreeMap<String, ObjectState>) {
        *self.inner.lock().unwrap_or_else(|p| p.into_inner()) = all;
    }
    pub fn get(&self) -> BTreeMap<String, ObjectState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The result of [`assemble`].
#[derive(Debug)]
pub struct Assembly {
    /// The config to run (every accepted group), or the file's own problem.
    pub spec: Result<Spec, ConfigError>,
    /// Per object: what runs and what was refused.
    pub objects: BTreeMap<String, ObjectState>,
    /// The groups that run, by object name, with their generation (the next assembly's
    /// fallback for an object whose new spec is refused).
    pub running: BTreeMap<String, (RawGroup, Option<i64>)>,
}

/// Decode one object's spec: field errors name the path under `spec`.
pub fn decode(name: &str, spec: &serde_json::Value) -> Result<RawGroup, SourceError> {
    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(spec, &mut track);
    match FloatGroupSpec::deserialize(de) {
        Ok(s) => Ok(RawGroup {
            name: name.to_string(),
            region: s.region,
            policy: s.policy,
            targets: s.targets,
            floats: s.floats,
        }),
        Err(e) => {
            let path = track.path().to_string();
            let at = if path == "." {
                "spec".to_string()
            } else {
                format!("spec.{path}")
            };
            Err(SourceError::Decode {
                at,
                reason: e.to_string().replace("struct Raw", "a mapping "),
            })
        }
    }
}

/// `groups[i]...` paths of a combined validation, in the words of the objects.
fn object_path(path: &str, names: &[&str]) -> String {
    let Some(rest) = path.strip_prefix("groups[") else {
        return path.to_string();
    };
    let Some((idx, tail)) = rest.split_once(']') else {
        return path.to_string();
    };
    let Some(name) = idx.parse::<usize>().ok().and_then(|i| names.get(i)) else {
        return path.to_string();
    };
    match tail.strip_prefix('.') {
        Some("name") => format!("FloatGroup {name}: metadata.name"),
        Some(t) => format!("FloatGroup {name}: spec.{t}"),
        None => format!("FloatGroup {name}: spec"),
    }
}

fn try_with(
    base: &RawConfig,
    running: &[(String, RawGroup)],
    extra: Option<(&str, &RawGroup)>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Spec, SourceError> {
    let mut raw = base.clone();
    raw.groups = running.iter().map(|(_, g)| g.clone()).collect();
    let mut names: Vec<&str> = running.iter().map(|(n, _)| n.as_str()).collect();
    if let Some((n, g)) = extra {
        raw.groups.push(g.clone());
        names.push(n);
    }
    config::resolve_objects(&raw, env).map_err(|e| {
        SourceError::Invalid(
            e.issues()
                .iter()
                .map(|i| (object_path(&i.path, &names), i.reason.clone()))
                .collect(),
        )
    })
}

/// Build the config from the file's settings (`base`, already valid on its own) and the
/// objects found; `previous` is the last assembly's running set. Pure.
pub fn assemble(
    base: &RawConfig,
    found: &[Found],
    previous: &BTreeMap<String, (RawGroup, Option<i64>)>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Assembly {
    let mut sorted: Vec<&Found> = found.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut running: Vec<(String, RawGroup)> = Vec::new();
    let mut out_running = BTreeMap::new();
    let mut objects = BTreeMap::new();
    for f in sorted {
        let mut st = ObjectState {
            uid: f.uid.clone(),
            ..Default::default()
        };
        let new = f
            .spec
            .clone()
            .and_then(|g| try_with(base, &running, Some((&f.name, &g)), env).map(|_| g));
        match new {
            Ok(g) => {
                st.running_generation = f.generation;
                running.push((f.name.clone(), g.clone()));
                out_running.insert(f.name.clone(), (g, f.generation));
            }
            Err(why) => {
                let why = why.to_string();
                let why = if why.starts_with("FloatGroup ") {
                    why
                } else {
                    format!("FloatGroup {}: {why}", f.name)
                };
                st.rejected = Some(why);
                if let Some((old, generation)) = previous.get(&f.name)
                    && try_with(base, &running, Some((&f.name, old)), env).is_ok()
                {
                    st.running_generation = *generation;
                    running.push((f.name.clone(), old.clone()));
                    out_running.insert(f.name.clone(), (old.clone(), *generation));
                }
            }
        }
        objects.insert(f.name.clone(), st);
    }
    let spec = {
        let mut raw = base.clone();
        raw.groups = running.into_iter().map(|(_, g)| g).collect();
        config::resolve_objects(&raw, env)
    };
    Assembly {
        spec,
        objects,
        running: out_running,
    }
}

/// Reads the FloatGroups of one namespace.
pub struct ObjectSource {
    api: Api<DynamicObject>,
    namespace: String,
    /// The last assembly's running set.
    running: BTreeMap<String, (RawGroup, Option<i64>)>,
    state: Arc<ObjectsState>,
}

impl ObjectSource {
    pub fn new(client: kube::Client, namespace: &str, state: Arc<ObjectsState>) -> Self {
        let gvk = GroupVersionKind::gvk("floatover.io", "v1alpha1", "FloatGroup");
        let ar = ApiResource::from_gvk_with_plural(&gvk, "floatgroups");
        ObjectSource {
            api: Api::namespaced_with(client, namespace, &ar),
            namespace: namespace.to_string(),
            running: BTreeMap::new(),
            state,
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Every FloatGroup in the namespace.
    #[tracing::instrument(skip(self), fields(namespace = %self.namespace))]
    pub async fn list(&self) -> Result<Vec<Found>, SourceError> {
        let list = self.api.list(&ListParams::default()).await.map_err(|e| {
            let (reason, message) = crate::leader::kube::reason_of(&e);
            SourceError::List {
                namespace: self.namespace.clone(),
                reason,
                message,
            }
        })?;
        Ok(list
            .items
            .into_iter()
            .map(|o| {
                let name = o.metadata.name.clone().unwrap_or_default();
                let raw = o.data.get("spec").cloned().unwrap_or_default();
                Found {
                    spec: decode(&name, &raw),
                    name,
                    uid: o.metadata.uid.clone(),
                    generation: o.metadata.generation,
                    raw,
                }
            })
            .collect())
    }

    /// Assemble `found` with `base`, remember what runs, and publish the objects' state.
    pub fn accept(
        &mut self,
        base: &RawConfig,
        found: &[Found],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Assembly {
        let a = assemble(base, found, &self.running, env);
        if a.spec.is_ok() {
            self.running = a.running.clone();
            self.state.set(a.objects.clone());
        }
        a
    }
}

#[cfg(test)]
mod tests;
