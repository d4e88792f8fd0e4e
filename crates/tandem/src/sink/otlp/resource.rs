//! sink::otlp::resource: who emitted the telemetry: the OTel resource every request
//! carries (FaaS and cloud semantic conventions, `OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`), and the `k=v,…` lists those variables use. Pure.

use super::encode::{int, string};
use super::ids::hex_val;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;

/// The resource every request carries: who emitted the telemetry.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resource {
    attributes: Vec<KeyValue>,
}

impl Resource {
    /// Builds the resource from the environment (`get` reads a variable):
    /// `cloud.provider=aws`, `cloud.platform=aws_lambda`, `cloud.region` (`AWS_REGION`),
    /// `faas.name` (`AWS_LAMBDA_FUNCTION_NAME`), `faas.version`
    /// (`AWS_LAMBDA_FUNCTION_VERSION`), `faas.instance` (`AWS_LAMBDA_LOG_STREAM_NAME`;
    /// Lambda hides it from extensions, see [`Resource::identify`]), `faas.max_memory`
    /// (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, in bytes), then every pair of
    /// `OTEL_RESOURCE_ATTRIBUTES` (overriding the detected values), and `service.name`:
    /// `OTEL_SERVICE_NAME`, else `service.name` of `OTEL_RESOURCE_ATTRIBUTES`, else the
    /// function name, else `unknown_service`. Malformed pairs are skipped (the config
    /// reports them).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Resource {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let mut r = Resource::default();
        r.set_str("cloud.provider", "aws");
        r.set_str("cloud.platform", "aws_lambda");
        if let Some(region) = get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION")) {
            r.set_str("cloud.region", &region);
        }
        let function = get("AWS_LAMBDA_FUNCTION_NAME");
        if let Some(f) = &function {
            r.set_str("faas.name", f);
        }
        if let Some(v) = get("AWS_LAMBDA_FUNCTION_VERSION") {
            r.set_str("faas.version", &v);
        }
        if let Some(s) = get("AWS_LAMBDA_LOG_STREAM_NAME") {
            r.set_str("faas.instance", &s);
        }
        if let Some(mb) = get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").and_then(|m| m.trim().parse::<i64>().ok()) {
            r.set("faas.max_memory", int(mb.saturating_mul(1024 * 1024)));
        }
        let mut service = function.unwrap_or_else(|| "unknown_service".to_owned());
        if let Some(attrs) = get("OTEL_RESOURCE_ATTRIBUTES") {
            for (k, v) in parse_key_values(&attrs).0 {
                if k == "service.name" {
                    service = v;
                } else {
                    r.set_str(&k, &v);
                }
            }
        }
        if let Some(name) = get("OTEL_SERVICE_NAME") {
            service = name;
        }
        r.set_str("service.name", &service);
        r
    }

    /// Sets (or replaces) a string attribute.
    pub fn set_str(&mut self, key: &str, value: &str) {
        self.set(key, string(value));
    }

    /// Sets (or replaces) an attribute.
    pub fn set(&mut self, key: &str, value: AnyValue) {
        match self.attributes.iter_mut().find(|kv| kv.key == key) {
            Some(kv) => kv.value = Some(value),
            None => self.attributes.push(KeyValue { key: key.to_owned(), value: Some(value), key_strindex: 0 }),
        }
    }

    /// Sets `faas.instance` (e.g. from `platform.initStart`'s `instanceId`), unless the
    /// environment already named one.
    pub fn set_instance(&mut self, instance: &str) {
        if self.get_str("faas.instance").is_none() {
            self.set_str("faas.instance", instance);
        }
    }

    /// Completes the resource with what the execution environment told the extension
    /// after it started (each only where the environment or `OTEL_RESOURCE_ATTRIBUTES`
    /// did not name it already):
    /// - `faas.instance`: `platform.initStart`'s `instanceId`, else the extension
    ///   identifier Lambda gave at register, which is unique to the execution
    ///   environment and stable for its life (the log stream name the OpenTelemetry
    ///   Lambda detectors use is hidden from extensions);
    /// - `cloud.account.id`: the register answer's `accountId`;
    /// - `cloud.resource_id`: the function's ARN, with its version unless `$LATEST`
    ///   (the semantic conventions' rule: the ARN without alias, with the version).
    pub fn identify(&mut self, who: &Identity<'_>) {
        if let Some(i) = who.instance_id.or(who.extension_id).filter(|i| !i.is_empty()) {
            self.set_instance(i);
        }
        let Some(account) = who.account_id.filter(|a| !a.is_empty()) else { return };
        if self.get_str("cloud.account.id").is_none() {
            self.set_str("cloud.account.id", account);
        }
        if self.get_str("cloud.resource_id").is_some() {
            return;
        }
        if let (Some(region), Some(function)) = (self.get_str("cloud.region"), self.get_str("faas.name")) {
            let partition = if region.starts_with("cn-") {
                "aws-cn"
            } else if region.starts_with("us-gov-") {
                "aws-us-gov"
            } else {
                "aws"
            };
            let mut arn = format!("arn:{partition}:lambda:{region}:{account}:function:{function}");
            if let Some(v) = self.get_str("faas.version").filter(|v| *v != "$LATEST") {
                arn.push(':');
                arn.push_str(v);
            }
            self.set_str("cloud.resource_id", &arn);
        }
    }

    /// A string attribute's value.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|kv| kv.key == key).and_then(|kv| match &kv.value {
            Some(AnyValue { value: Some(any_value::Value::StringValue(s)) }) => Some(s.as_str()),
            _ => None,
        })
    }

    /// Every attribute, in insertion order.
    pub fn attributes(&self) -> &[KeyValue] {
        &self.attributes
    }

    /// The name invocation spans carry: `faas.name`, else `service.name`.
    pub fn function_name(&self) -> &str {
        self.get_str("faas.name").or_else(|| self.get_str("service.name")).unwrap_or("unknown_service")
    }

    /// The resource as its protobuf message.
    pub(crate) fn to_proto(&self) -> OtlpResource {
        OtlpResource { attributes: self.attributes.clone(), dropped_attributes_count: 0, entity_refs: Vec::new() }
    }
}

/// What the execution environment told the extension after it started (see
/// [`Resource::identify`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Identity<'a> {
    /// `platform.initStart`'s `instanceId`.
    pub instance_id: Option<&'a str>,
    /// The extension identifier of the register answer.
    pub extension_id: Option<&'a str>,
    /// The register answer's `accountId`.
    pub account_id: Option<&'a str>,
}

/// Parses the `key=value,key2=value2` lists of `OTEL_RESOURCE_ATTRIBUTES` and
/// `OTEL_EXPORTER_OTLP_HEADERS` (W3C Baggage-like): entries split on `,`, key and value
/// trimmed and percent-decoded. Returns the pairs and one line per malformed entry (the
/// entry's value is never quoted in it: it may be a secret).
pub fn parse_key_values(s: &str) -> (Vec<(String, String)>, Vec<String>) {
    let mut pairs = Vec::new();
    let mut problems = Vec::new();
    for (i, entry) in s.split(',').enumerate() {
        if entry.trim().is_empty() {
            continue;
        }
        match entry.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => pairs.push((percent_decode(k.trim()), percent_decode(v.trim()))),
            Some(_) => problems.push(format!("entry {} has an empty key; skipped", i + 1)),
            None => problems.push(format!("entry {} is not key=value; skipped", i + 1)),
        }
    }
    (pairs, problems)
}

/// Decodes `%XX` escapes; invalid escapes are kept verbatim, invalid UTF-8 replaced.
pub fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
