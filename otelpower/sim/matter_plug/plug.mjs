#!/usr/bin/env node
// A virtual Matter smart plug with energy metering, for otelpower's test bed.
//
// Readings come from the parent process as JSON lines on stdin:
//   {"power_w": 12.3, "voltage_v": 230.1, "current_a": 0.05, "energy_wh": 1234.5, "on": true}
// (any value may be null -> the nullable attribute becomes null; a missing key leaves it alone).
// Events go to stdout as JSON lines: {"event":"ready",...} once the node listens,
// {"event":"onoff","on":bool} when a controller switches the relay. matter.js logs go to stderr.
//
// Endpoints: 0 root (BasicInformation, GeneralDiagnostics with the MAC from --mac),
// 1 On/Off Plug-in Unit (relay), 2 Electrical Sensor (PowerTopology, ElectricalPowerMeasurement,
// ElectricalEnergyMeasurement). With --layout combined the measurement clusters sit on
// endpoint 1 next to OnOff instead (as some real plugs do).

import { createInterface } from "node:readline";
import { parseArgs } from "node:util";

const USAGE = `usage: node plug.mjs --mac aa:bb:cc:dd:ee:ff --storage DIR [options]
  --port N               UDP port of the Matter node (default 5540)
  --passcode N           setup passcode (default 20202021)
  --discriminator N      12-bit discriminator (default 3840)
  --serial S             serial number (default: derived from the MAC)
  --name NAME            product name / node label (default P110M)
  --vendor-name NAME     vendor name (default TP-Link)
  --software-version S   softwareVersionString (default 1.0.0)
  --listen-ipv6 ADDR     IPv6 address to listen on (default: all)
  --no-ipv4              do not listen on IPv4
  --interface NAME       network interface for mDNS and GeneralDiagnostics name (default: all)
  --layout L             separate (measurement on endpoint 2, default) | combined (on endpoint 1)
  --log-level L          matter.js log level on stderr (default warn)`;

let args;
try {
    ({ values: args } = parseArgs({
        options: {
            mac: { type: "string" },
            port: { type: "string", default: "5540" },
            passcode: { type: "string", default: "20202021" },
            discriminator: { type: "string", default: "3840" },
            storage: { type: "string" },
            serial: { type: "string" },
            name: { type: "string", default: "P110M" },
            "vendor-name": { type: "string", default: "TP-Link" },
            "software-version": { type: "string", default: "1.0.0" },
            "listen-ipv6": { type: "string" },
            "no-ipv4": { type: "boolean", default: false },
            interface: { type: "string" },
            layout: { type: "string", default: "separate" },
            "log-level": { type: "string", default: "warn" },
            help: { type: "boolean", default: false },
        },
        strict: true,
    }));
} catch (e) {
    process.stderr.write(`${e.message}\n${USAGE}\n`);
    process.exit(2);
}
if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
}

function fail(message) {
    process.stderr.write(`plug.mjs: ${message}\n${USAGE}\n`);
    process.exit(2);
}

const mac = (args.mac ?? "").toLowerCase();
if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(mac)) fail("--mac aa:bb:cc:dd:ee:ff is required");
if (!args.storage) fail("--storage DIR is required");
const port = Number(args.port);
const passcode = Number(args.passcode);
const discriminator = Number(args.discriminator);
if (!Number.isInteger(port) || port < 1 || port > 65535) fail("bad --port");
if (!Number.isInteger(passcode) || passcode < 1 || passcode > 99999998) fail("bad --passcode");
if (!Number.isInteger(discriminator) || discriminator < 0 || discriminator > 4095) fail("bad --discriminator");
if (!["separate", "combined"].includes(args.layout)) fail("bad --layout");
const macHex = mac.replaceAll(":", "");
const serial = args.serial ?? macHex.toUpperCase();

// matter.js must not read our argv/env/config file nor trap signals: configure it before it loads.
const { config } = await import("@matter/nodejs/config");
config.loadProcessArgv = false;
config.loadProcessEnv = false;
config.loadConfigFile = false;
config.trapProcessSignals = false;

const { Environment, Logger, ServerNode, Endpoint, VendorId, DeviceTypeId, Bytes } = await import(
    "@matter/main"
);
const { OnOffPlugInUnitDevice } = await import("@matter/main/devices/on-off-plug-in-unit");
const { ElectricalSensorEndpoint } = await import("@matter/main/endpoints/electrical-sensor");
const { PowerTopologyServer } = await import("@matter/main/behaviors/power-topology");
const { ElectricalPowerMeasurementServer } = await import(
    "@matter/main/behaviors/electrical-power-measurement"
);
const { ElectricalEnergyMeasurementServer } = await import(
    "@matter/main/behaviors/electrical-energy-measurement"
);
const { GeneralDiagnosticsServer } = await import("@matter/main/behaviors/general-diagnostics");

// Logs to stderr: stdout carries our JSON protocol only.
for (const dest of Object.values(Logger.destinations)) {
    dest.write = (text) => process.stderr.write(`${text}\n`);
}
Logger.level = args["log-level"];

const env = Environment.default;
env.vars.set("storage.path", args.storage);
if (args.interface) env.vars.set("mdns.networkInterface", args.interface);

function emit(obj) {
    process.stdout.write(`${JSON.stringify(obj)}\n`);
}

// GeneralDiagnostics.NetworkInterfaces lists the host's interfaces (and their MACs). A real plug
// has one interface with its own MAC: report exactly that, whatever matter.js found.
class OwnMacGeneralDiagnosticsServer extends GeneralDiagnosticsServer {
    initialize() {
        const result = super.initialize();
        this.reactTo(this.events.networkInterfaces$Changed, this.enforceOwnMac, { offline: true });
        return result;
    }

    enforceOwnMac() {
        const current = this.state.networkInterfaces ?? [];
        const ok =
            current.length === 1 && Bytes.toHex(Bytes.of(current[0].hardwareAddress)) === macHex;
        if (ok) return;
        const first = current[0];
        this.state.networkInterfaces = [
            {
                name: args.interface ?? first?.name ?? "eth0",
                isOperational: true,
                offPremiseServicesReachableIPv4: null,
                offPremiseServicesReachableIPv6: null,
                hardwareAddress: Bytes.fromHex(macHex),
                iPv4Addresses: first?.iPv4Addresses ?? [],
                iPv6Addresses: first?.iPv6Addresses ?? [],
                type: first?.type ?? 1, // WiFi
            },
        ];
    }
}

const MeasurementType = { Voltage: 1, ActiveCurrent: 2, ActivePower: 5, RmsVoltage: 8, RmsCurrent: 9, ElectricalEnergy: 14 };
const accuracy = (measurementType, min, max) => ({
    measurementType,
    measured: true,
    minMeasuredValue: min,
    maxMeasuredValue: max,
    accuracyRanges: [{ rangeMin: min, rangeMax: max, percentMax: 200 }], // 2 %
});

const PowerServer = ElectricalPowerMeasurementServer.with("AlternatingCurrent");
const EnergyServer = ElectricalEnergyMeasurementServer.with("CumulativeEnergy", "ImportedEnergy");
const TopologyServer = PowerTopologyServer.with("NodeTopology");
const measurementState = {
    electricalPowerMeasurement: {
        powerMode: 2, // AC
        numberOfMeasurementTypes: 5,
        accuracy: [
            accuracy(MeasurementType.ActivePower, 0, 4_000_000),
            accuracy(MeasurementType.Voltage, 0, 300_000),
            accuracy(MeasurementType.ActiveCurrent, 0, 16_000),
            accuracy(MeasurementType.RmsVoltage, 0, 300_000),
            accuracy(MeasurementType.RmsCurrent, 0, 16_000),
        ],
        activePower: null,
        voltage: null,
        activeCurrent: null,
        rmsVoltage: null,
        rmsCurrent: null,
    },
    electricalEnergyMeasurement: {
        accuracy: accuracy(MeasurementType.ElectricalEnergy, 0, 1_000_000_000_000),
        cumulativeEnergyImported: null,
    },
};

const node = await ServerNode.create(ServerNode.RootEndpoint.with(OwnMacGeneralDiagnosticsServer), {
    id: "plug",
    network: {
        port,
        ipv4: !args["no-ipv4"],
        ...(args["listen-ipv6"] ? { listeningAddressIpv6: args["listen-ipv6"] } : {}),
    },
    commissioning: { passcode, discriminator },
    productDescription: {
        name: args.name,
        deviceType: DeviceTypeId(OnOffPlugInUnitDevice.deviceType),
    },
    basicInformation: {
        vendorName: args["vendor-name"],
        vendorId: VendorId(0xfff1),
        productName: args.name,
        productLabel: args.name,
        productId: 0x8000,
        nodeLabel: args.name,
        serialNumber: serial,
        uniqueId: `otelpower-${macHex}`,
        hardwareVersion: 1,
        hardwareVersionString: "1.0",
        softwareVersion: 1,
        softwareVersionString: args["software-version"],
    },
});

let relay;
let sensor;
if (args.layout === "combined") {
    relay = new Endpoint(
        OnOffPlugInUnitDevice.with(TopologyServer, PowerServer, EnergyServer),
        { id: "relay", ...measurementState },
    );
    sensor = relay;
    await node.add(relay);
} else {
    relay = new Endpoint(OnOffPlugInUnitDevice, { id: "relay" });
    sensor = new Endpoint(ElectricalSensorEndpoint.with(TopologyServer, PowerServer, EnergyServer), {
        id: "meter",
        ...measurementState,
    });
    await node.add(relay);
    await node.add(sensor);
}

// --- relay ------------------------------------------------------------------------------------
let controllerChangeAt = 0; // when a controller last switched the relay
let applyingFeed = false;
relay.events.onOff.onOff$Changed.on((on, _old, context) => {
    // A controller's change carries its session's subject; ours (from stdin) does not.
    const byController = context ? context.subject !== undefined : !applyingFeed;
    if (!byController) return;
    controllerChangeAt = Date.now();
    emit({ event: "onoff", on });
});

// --- readings from stdin ----------------------------------------------------------------------
const milli = (v) => (v === null ? null : Math.round(Number(v) * 1000));
const last = {};
function changed(key, value) {
    const json = JSON.stringify(value);
    if (last[key] === json) return false;
    last[key] = json;
    return true;
}

async function applyReading(r) {
    const power = {};
    const energy = {};
    const put = (patch, attr, value) => {
        if (value !== undefined && changed(attr, value)) patch[attr] = value;
    };
    if ("power_w" in r) put(power, "activePower", milli(r.power_w));
    if ("voltage_v" in r) {
        put(power, "voltage", milli(r.voltage_v));
        put(power, "rmsVoltage", milli(r.voltage_v));
    }
    if ("current_a" in r) {
        put(power, "activeCurrent", milli(r.current_a));
        put(power, "rmsCurrent", milli(r.current_a));
    }
    if ("energy_wh" in r) {
        const mwh = milli(r.energy_wh);
        put(energy, "cumulativeEnergyImported", mwh === null ? null : { energy: Math.max(0, mwh) });
    }
    const patch = {};
    if (Object.keys(power).length) patch.electricalPowerMeasurement = power;
    if (Object.keys(energy).length) patch.electricalEnergyMeasurement = energy;
    if (Object.keys(patch).length) await sensor.set(patch);

    if (typeof r.on === "boolean") {
        // Just after a controller switched the relay the parent may still feed the old state.
        const settling = Date.now() - controllerChangeAt < 1500;
        if (r.on !== relay.state.onOff.onOff && !settling) {
            applyingFeed = true;
            try {
                await relay.set({ onOff: { onOff: r.on } });
            } finally {
                applyingFeed = false;
            }
        }
    }
}

let stopping = false;
const lines = createInterface({ input: process.stdin });
const feed = (async () => {
    for await (const line of lines) {
        if (stopping) break;
        if (!line.trim()) continue;
        let reading;
        try {
            reading = JSON.parse(line);
        } catch {
            process.stderr.write(`plug.mjs: ignoring bad input line: ${line}\n`);
            continue;
        }
        try {
            await applyReading(reading);
        } catch (e) {
            process.stderr.write(`plug.mjs: could not apply ${line}: ${e?.stack ?? e}\n`);
        }
    }
})();

// --- lifecycle --------------------------------------------------------------------------------
async function shutdown(code) {
    if (stopping) return;
    stopping = true;
    lines.close();
    try {
        await node.close();
    } catch (e) {
        process.stderr.write(`plug.mjs: close failed: ${e?.stack ?? e}\n`);
        code = code || 1;
    }
    process.exit(code);
}
process.on("SIGTERM", () => shutdown(0));
process.on("SIGINT", () => shutdown(0));

await node.start();
emit({
    event: "ready",
    port,
    passcode,
    discriminator,
    mac,
    commissioned: node.lifecycle.isCommissioned,
    pairing_code: node.state.commissioning.pairingCodes?.manualPairingCode ?? null,
});
node.lifecycle.commissioned.on(() => emit({ event: "commissioned" }));
node.lifecycle.decommissioned.on(() => emit({ event: "decommissioned" }));
// stdin closed (parent gone): stop like on SIGTERM.
await feed;
await shutdown(0);
