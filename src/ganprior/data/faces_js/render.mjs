// Renders the cartoon-faces dataset of ganprior (see ganprior/data/cartoon_faces.py, which runs this).
//
// Every image is drawn from EXPLICIT parameters chosen by a PRNG seeded with "<style>:<seed>", so
// an image is a pure function of (style, seed) and carries its attribute labels:
//   * avataaars: one value per option of @dicebear/avataaars's schema, passed to DiceBear as a
//     one-element list (probabilities 0 or 100), so DiceBear's own randomness picks nothing;
//   * facesjs: facesjs.generate() with Math.random replaced by the seeded PRNG; the returned face
//     object is the explicit parameter set that faceToSvgString() draws.
//
// Usage:
//   node render.mjs vocab                          -> one JSON object: categorical attributes per style
//   node render.mjs render STYLE START COUNT SIZE   -> JSON lines {style, seed, params, png (base64)}
//                                                     for seeds START..START+COUNT-1, SIZE px square
import { createAvatar } from "@dicebear/core";
import * as avataaars from "@dicebear/avataaars";
import { generate, faceToSvgString, svgsIndex } from "facesjs";
import { Resvg } from "@resvg/resvg-js";

const schema = avataaars.schema.properties;
const colour = (name) => schema[name].default;
const choice = (name) => schema[name].items.enum;

// Categorical avataaars attributes: name -> the values drawn from (uniformly). "none" = absent.
const AVATAARS = {
  top: choice("top"),
  hairColor: colour("hairColor"),
  hatColor: colour("hatColor"),
  eyes: choice("eyes"),
  eyebrows: choice("eyebrows"),
  mouth: choice("mouth"),
  skinColor: colour("skinColor"),
  clothing: choice("clothing"),
  clothesColor: colour("clothesColor"),
  clothingGraphic: choice("clothingGraphic"),
  accessories: ["none", ...choice("accessories")],
  accessoriesColor: colour("accessoriesColor"),
  facialHair: ["none", ...choice("facialHair")],
  facialHairColor: colour("facialHairColor"),
};
const P_ACCESSORIES = 0.2;
const P_FACIAL_HAIR = 0.2;

// Categorical facesjs attributes (path in the face object -> possible values).
const FACESJS = {
  gender: ["male", "female"],
  race: ["white", "black", "brown", "asian"],
  "body.color": null, // filled below from the palettes generate() draws skin from
  "hair.id": svgsIndex.hair,
  "hair.color": null,
  "eye.id": svgsIndex.eye,
  "eyebrow.id": svgsIndex.eyebrow,
  "mouth.id": svgsIndex.mouth,
  "nose.id": svgsIndex.nose,
  "head.id": svgsIndex.head,
  "facialHair.id": ["none", ...svgsIndex.facialHair],
  "glasses.id": ["none", ...svgsIndex.glasses],
  "accessories.id": ["none", ...svgsIndex.accessories],
  "jersey.id": svgsIndex.jersey,
};
// facesjs 5.0.3's generate.js palettes (the module does not export them from its index).
const FACESJS_SKIN = ["#f2d6cb", "#ddb7a0", "#fedac7", "#f0c5a3", "#eab687", "#bb876f", "#aa816f", "#a67358",
  "#ad6453", "#74453d", "#5c3937"];
const FACESJS_HAIR = ["#272421", "#3D2314", "#5A3825", "#CC9966", "#2C1608", "#B55239", "#e9c67b", "#D7BF91",
  "#0f0902", "#1c1008"];
FACESJS["body.color"] = FACESJS_SKIN;
FACESJS["hair.color"] = FACESJS_HAIR;
// The square crop of facesjs's 400x600 portrait (padded white at the sides) that holds head and shoulders.
const FACESJS_VIEWBOX = "-50 40 500 500";
// The square crop of the 280x280 avataaars canvas that holds the head, hats and shoulders.
const AVATAARS_VIEWBOX = "30 10 220 220";

// cyrb53-style string hash -> 32-bit seed; mulberry32 PRNG. Both are tiny, exact and portable.
function hash32(text) {
  let h1 = 0xdeadbeef, h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  return h1 >>> 0;
}
function mulberry32(a) {
  return () => {
    a |= 0; a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function avataaarsParams(rand) {
  const pick = (values) => values[Math.floor(rand() * values.length)];
  const params = {};
  for (const [name, values] of Object.entries(AVATAARS)) params[name] = pick(values);
  if (rand() >= P_ACCESSORIES) params.accessories = "none";
  if (rand() >= P_FACIAL_HAIR) params.facialHair = "none";
  return params;
}

function avataaarsSvg(p) {
  const one = (v) => (v === "none" ? [] : [v]);
  return createAvatar(avataaars, {
    seed: "ganprior", backgroundColor: ["ffffff"],
    top: [p.top], topProbability: 100, hairColor: [p.hairColor], hatColor: [p.hatColor],
    eyes: [p.eyes], eyebrows: [p.eyebrows], mouth: [p.mouth], skinColor: [p.skinColor],
    clothing: [p.clothing], clothesColor: [p.clothesColor], clothingGraphic: [p.clothingGraphic],
    accessories: one(p.accessories), accessoriesProbability: p.accessories === "none" ? 0 : 100,
    accessoriesColor: [p.accessoriesColor],
    facialHair: one(p.facialHair), facialHairProbability: p.facialHair === "none" ? 0 : 100,
    facialHairColor: [p.facialHairColor],
  }).toString().replace(/viewBox="[^"]*"/, `viewBox="${AVATAARS_VIEWBOX}"`);
}

function facesjsParams(rand) {
  const saved = Math.random;
  Math.random = rand;
  try {
    const gender = rand() < 0.5 ? "male" : "female";
    const race = FACESJS.race[Math.floor(rand() * FACESJS.race.length)];
    return { gender, race, face: generate(undefined, { gender, race }) };
  } finally {
    Math.random = saved;
  }
}

function facesjsSvg(p) {
  const svg = faceToSvgString(p.face);
  // facesjs sizes its root element as 100%, which a standalone renderer cannot resolve.
  return svg.replace(/width="100%" height="100%" viewBox="[^"]*"/, `width="500" height="500" viewBox="${FACESJS_VIEWBOX}"`);
}

const STYLES = {
  avataaars: { params: avataaarsParams, svg: avataaarsSvg },
  facesjs: { params: facesjsParams, svg: facesjsSvg },
};

function toPng(svg, size) {
  const resvg = new Resvg(svg, { fitTo: { mode: "width", value: size }, background: "white" });
  return resvg.render().asPng();
}

// Wait for each chunk to be flushed: a synchronous loop would queue the whole output in memory.
const write = (text) => new Promise((resolve, reject) => process.stdout.write(text, (e) => (e ? reject(e) : resolve())));

async function main(argv) {
  const [command, style, start, count, size] = argv;
  if (command === "vocab") {
    await write(JSON.stringify({ avataaars: AVATAARS, facesjs: FACESJS }) + "\n");
    return;
  }
  if (command !== "render" || !(style in STYLES)) {
    throw new Error("usage: render.mjs vocab | render (avataaars|facesjs) START COUNT SIZE");
  }
  const [first, n, px] = [Number(start), Number(count), Number(size)];
  if (![first, n, px].every(Number.isSafeInteger) || first < 0 || n < 0 || px < 1) {
    throw new Error("START, COUNT and SIZE must be non-negative integers (SIZE > 0)");
  }
  const lines = [];
  for (let seed = first; seed < first + n; seed++) {
    const params = STYLES[style].params(mulberry32(hash32(`${style}:${seed}`)));
    const png = toPng(STYLES[style].svg(params), px);
    lines.push(JSON.stringify({ style, seed, params, png: png.toString("base64") }));
    if (lines.length >= 64) { await write(lines.join("\n") + "\n"); lines.length = 0; }
  }
  if (lines.length) await write(lines.join("\n") + "\n");
}

main(process.argv.slice(2)).catch((err) => { process.stderr.write(`${err.stack ?? err}\n`); process.exit(1); });
