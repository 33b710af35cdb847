#!/usr/bin/env node
// Writes the Matter Test PAA certificate (DER) that matter.js test devices chain to, plus an
// empty .version file (stops python-matter-server from fetching certificates), into DEST_DIR.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TestCert_PAA_NoVID_Cert } from "@matter/protocol";

const dest = process.argv[2];
if (!dest) {
    process.stderr.write("usage: node export-paa.mjs DEST_DIR\n");
    process.exit(2);
}
mkdirSync(dest, { recursive: true });
const file = join(dest, "Chip-Test-PAA-NoVID-Cert.der");
writeFileSync(file, TestCert_PAA_NoVID_Cert);
writeFileSync(join(dest, ".version"), "");
process.stdout.write(`${file}\n`);
