// gen.js writes the CVSS v4.0 reference tables that adapters/cvss's tests
// compare tollgate's scores with, from FIRST's own calculator code.
//
// Usage (from this directory; node 18 or later, no npm packages):
//
//   node gen.js PATH/TO/cvss40.js
//
// where cvss40.js is the file of that name in
// github.com/RedHatProductSecurity/cvss-v4-calculator (the code behind
// https://www.first.org/cvss/calculator/4.0), in the version that rounds
// with roundToDecimalPlaces(value) = Math.round((value + 1e-6) * 10) / 10.
// See README.md for the exact version used and why it is not committed.
//
// It writes:
//
//   base.bin.gz   one byte per base vector, score × 10 (0–100), for all
//                 104,976 CVSS v4.0 base vectors in the order baseVectors()
//                 enumerates them (the Go test enumerates the same order);
//   random.txt.gz "SCORE VECTOR" lines for COUNT vectors drawn with a fixed
//                 seed, each with a random selection of Threat,
//                 Environmental and Supplemental metrics;
//   ../../lookup40.go the calculator's LOOKUP_TABLE (the score of each
//                 macro vector) as Go, for tollgate's scoring.
"use strict";

const fs = require("fs");
const path = require("path");
const zlib = require("zlib");

const COUNT = 5000;
const SEED = 20261203;

// The metrics and their values in the specification's order (Table 23 of
// the CVSS v4.0 specification), "X" (Not Defined) first where allowed.
const BASE = [
  ["AV", ["N", "A", "L", "P"]],
  ["AC", ["L", "H"]],
  ["AT", ["N", "P"]],
  ["PR", ["N", "L", "H"]],
  ["UI", ["N", "P", "A"]],
  ["VC", ["H", "L", "N"]],
  ["VI", ["H", "L", "N"]],
  ["VA", ["H", "L", "N"]],
  ["SC", ["H", "L", "N"]],
  ["SI", ["H", "L", "N"]],
  ["SA", ["H", "L", "N"]],
];
const OPTIONAL = [
  ["E", ["X", "A", "P", "U"]],
  ["CR", ["X", "H", "M", "L"]],
  ["IR", ["X", "H", "M", "L"]],
  ["AR", ["X", "H", "M", "L"]],
  ["MAV", ["X", "N", "A", "L", "P"]],
  ["MAC", ["X", "L", "H"]],
  ["MAT", ["X", "N", "P"]],
  ["MPR", ["X", "N", "L", "H"]],
  ["MUI", ["X", "N", "P", "A"]],
  ["MVC", ["X", "H", "L", "N"]],
  ["MVI", ["X", "H", "L", "N"]],
  ["MVA", ["X", "H", "L", "N"]],
  ["MSC", ["X", "H", "L", "N"]],
  ["MSI", ["X", "S", "H", "L", "N"]],
  ["MSA", ["X", "S", "H", "L", "N"]],
  ["S", ["X", "N", "P"]],
  ["AU", ["X", "N", "Y"]],
  ["R", ["X", "A", "U", "I"]],
  ["V", ["X", "D", "C"]],
  ["RE", ["X", "L", "M", "H"]],
  ["U", ["X", "Clear", "Green", "Amber", "Red"]],
];

// baseVectors enumerates every base vector: a mixed-radix counter over
// BASE, the first metric (AV) most significant, each metric's values in
// BASE's order. Index i of base.bin is the i-th vector.
function* baseVectors() {
  const idx = new Array(BASE.length).fill(0);
  for (;;) {
    yield "CVSS:4.0/" + BASE.map(([m, vs], i) => `${m}:${vs[idx[i]]}`).join("/");
    let i = BASE.length - 1;
    while (i >= 0 && ++idx[i] === BASE[i][1].length) idx[i--] = 0;
    if (i < 0) return;
  }
}

// mulberry32: a small seeded PRNG, so that the random set is reproducible.
function mulberry32(a) {
  return function () {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomVector(rand) {
  const pick = (vs) => vs[Math.floor(rand() * vs.length)];
  const parts = BASE.map(([m, vs]) => `${m}:${pick(vs)}`);
  // Half the vectors carry few optional metrics, half many: both the
  // common CVSS-BT shape and dense CVSS-BTE vectors get covered.
  const p = rand() < 0.5 ? 0.2 : 0.8;
  for (const [m, vs] of OPTIONAL) {
    if (rand() < p) parts.push(`${m}:${pick(vs)}`);
  }
  return "CVSS:4.0/" + parts.join("/");
}

function main() {
  const ref = process.argv[2];
  if (!ref) {
    console.error("usage: node gen.js PATH/TO/cvss40.js");
    process.exit(2);
  }
  const { CVSS40 } = require(path.resolve(ref));
  const score = (v) => {
    const s = new CVSS40(v).score;
    const b = Math.round(s * 10);
    if (!(b >= 0 && b <= 100) || Math.abs(b / 10 - s) > 1e-9) throw new Error(`${v}: score ${s}`);
    return b;
  };

  const base = [];
  for (const v of baseVectors()) base.push(score(v));
  if (base.length !== 104976) throw new Error(`${base.length} base vectors, want 104976`);
  fs.writeFileSync(path.join(__dirname, "base.bin.gz"), zlib.gzipSync(Buffer.from(base), { level: 9 }));

  const rand = mulberry32(SEED);
  const lines = [];
  for (let i = 0; i < COUNT; i++) {
    const v = randomVector(rand);
    lines.push(`${(score(v) / 10).toFixed(1)} ${v}`);
  }
  fs.writeFileSync(path.join(__dirname, "random.txt.gz"), zlib.gzipSync(lines.join("\n") + "\n", { level: 9 }));
  const keys = Object.keys(CVSS40.LOOKUP_TABLE).sort();
  let table = "";
  for (let i = 0; i < keys.length; i += 6) {
    table += "\t" + keys.slice(i, i + 6).map((k) => `"${k}": ${CVSS40.LOOKUP_TABLE[k]},`).join(" ") + "\n";
  }
  fs.writeFileSync(path.join(__dirname, "..", "..", "lookup40.go"),
    "// Code generated from cvss40.js (CVSS40.LOOKUP_TABLE) of\n" +
    "// github.com/RedHatProductSecurity/cvss-v4-calculator; DO NOT EDIT.\n" +
    "// See testdata/cvss40ref/README.md.\n\n" +
    "package cvss\n\n" +
    "// lookup40 is the calculator's LOOKUP_TABLE: the score of each macro vector\n" +
    "// (EQ1…EQ6), from the CVSS v4.0 specification's expert rankings.\n" +
    "var lookup40 = map[string]float64{\n" + table + "}\n");
  console.log(`base: ${base.length} vectors; random: ${lines.length} vectors (seed ${SEED})`);
}

main();
