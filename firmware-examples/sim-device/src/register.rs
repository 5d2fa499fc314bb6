//! Registers a simulated fleet in central through the admin API: buildings, rooms, the `esp32`
//! type and the devices, spread evenly over the rooms. Running it again registers only what is
//! missing.

use anyhow::{Context, bail};
use neosens_protocol::ids::Mac;
use serde_json::{Value, json};

/// The MAC of simulated device `n`: locally administered (`02:…`), never a real board's.
pub fn mac(n: u32) -> Mac {
    let b = n.to_be_bytes();
    Mac::parse_lenient(&format!("02:5e:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3]))
        .expect("a well-formed MAC")
}

/// The fleet to register.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Devices.
    pub devices: u32,
    /// Buildings (`SIM-A`, `SIM-B` …).
    pub buildings: u32,
    /// Rooms per building (`101`, `102` …).
    pub rooms_per_building: u32,
}

struct Api<'a> {
    http: &'a reqwest::Client,
    base: String,
    token: &'a str,
}

impl Api<'_> {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request =
            self.http.request(method.clone(), format!("{}/api/v1{path}", self.base)).bearer_auth(self.token);
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request.send().await.with_context(|| format!("{method} {path}"))?;
        let status = response.status().as_u16();
        let value = response.json().await.unwrap_or(Value::Null);
        if status == 401 || status == 403 {
            bail!("{method} {path}: {status} — the token must be an admin token ({value})");
        }
        Ok((status, value))
    }

    async fn list(&self, path: &str) -> anyhow::Result<Vec<Value>> {
        let (status, v) = self.call(reqwest::Method::GET, path, None).await?;
        if status != 200 {
            bail!("GET {path}: {status} {v}");
        }
        Ok(v["items"].as_array().cloned().unwrap_or_default())
    }

    async fn create(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let (status, v) = self.call(reqwest::Method::POST, path, Some(body)).await?;
        if status != 201 {
            bail!("POST {path}: {status} {v}");
        }
        Ok(v)
    }
}

fn building_name(i: u32) -> String {
    let letter = char::from(b'A' + (i % 26) as u8);
    if i < 26 { format!("SIM-{letter}") } else { format!("SIM-{letter}{}", i / 26) }
}

/// Registers what is missing of `plan`; returns the MACs of the fleet.
pub async fn register(
    http: &reqwest::Client,
    central: &str,
    token: &str,
    plan: &Plan,
) -> anyhow::Result<Vec<Mac>> {
    let api = Api { http, base: central.trim_end_matches('/').to_owned(), token };
    if !api.list("/device-types").await?.iter().any(|t| t["name"] == "esp32") {
        api.create("/device-types", json!({"name": "esp32", "description": "neOSensor (ESP32)"})).await?;
    }
    let buildings = api.list("/buildings").await?;
    let rooms = api.list("/rooms").await?;
    let mut room_ids = Vec::new();
    for b in 0..plan.buildings.max(1) {
        let name = building_name(b);
        let building = match buildings.iter().find(|x| x["name"] == name.as_str()) {
            Some(x) => x.clone(),
            None => {
                api.create("/buildings", json!({"name": name, "description": "simulated neOSensors"})).await?
            }
        };
        for r in 0..plan.rooms_per_building.max(1) {
            let room_name = format!("{}", 101 + r);
            let room = match rooms
                .iter()
                .find(|x| x["building"] == building["id"] && x["name"] == room_name.as_str())
            {
                Some(x) => x.clone(),
                None => api.create("/rooms", json!({"building": building["id"], "name": room_name})).await?,
            };
            room_ids.push(room["id"].as_str().unwrap_or_default().to_owned());
        }
    }
    let mut macs = Vec::new();
    let mut created = 0;
    for n in 0..plan.devices {
        let m = mac(n);
        let room = &room_ids[n as usize % room_ids.len()];
        let (status, v) = api
            .call(
                reqwest::Method::POST,
                "/devices",
                Some(json!({"uid": format!("{m:x}"), "type": "esp32", "rooms": [room], "description": format!("simulated neOSensor {n}")})),
            )
            .await?;
        match status {
            201 => created += 1,
            409 => {}
            _ => bail!("registering {m:x}: {status} {v}"),
        }
        macs.push(m);
        if (n + 1) % 500 == 0 {
            eprintln!("sim-device: {} of {} devices registered", n + 1, plan.devices);
        }
    }
    eprintln!(
        "sim-device: fleet of {} devices in {} rooms ({created} newly registered)",
        plan.devices,
        room_ids.len()
    );
    Ok(macs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_locally_administered_and_distinct() {
        assert_eq!(format!("{:x}", mac(0)), "02:5e:00:00:00:00");
        assert_eq!(format!("{:x}", mac(258)), "02:5e:00:00:01:02");
        assert_ne!(mac(1), mac(2));
        assert_eq!(building_name(0), "SIM-A");
        assert_eq!(building_name(27), "SIM-B1");
    }
}
