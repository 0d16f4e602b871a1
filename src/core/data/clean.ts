/**
 * Caption cleaning: LAION alt-text is raw HTML attribute text, so entities are decoded
 * (named, &#NNN; and &#xHH;, and the common double encoding "&amp;quot;"), tags removed,
 * control and zero-width characters removed, whitespace collapsed to single spaces and trimmed.
 * An empty result means the caption is dropped (reason "empty").
 */

/** Named entities: the HTML 4 set (Latin-1, symbols, Greek, punctuation) plus &apos;. */
const NAMED_ENTITIES: Record<string, string> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
  nbsp: "\u00a0",
  iexcl: "¡",
  cent: "¢",
  pound: "£",
  curren: "¤",
  yen: "¥",
  brvbar: "¦",
  sect: "§",
  uml: "¨",
  copy: "©",
  ordf: "ª",
  laquo: "«",
  not: "¬",
  shy: "\u00ad",
  reg: "®",
  macr: "¯",
  deg: "°",
  plusmn: "±",
  sup2: "²",
  sup3: "³",
  acute: "´",
  micro: "µ",
  para: "¶",
  middot: "·",
  cedil: "¸",
  sup1: "¹",
  ordm: "º",
  raquo: "»",
  frac14: "¼",
  frac12: "½",
  frac34: "¾",
  iquest: "¿",
  Agrave: "À",
  Aacute: "Á",
  Acirc: "Â",
  Atilde: "Ã",
  Auml: "Ä",
  Aring: "Å",
  AElig: "Æ",
  Ccedil: "Ç",
  Egrave: "È",
  Eacute: "É",
  Ecirc: "Ê",
  Euml: "Ë",
  Igrave: "Ì",
  Iacute: "Í",
  Icirc: "Î",
  Iuml: "Ï",
  ETH: "Ð",
  Ntilde: "Ñ",
  Ograve: "Ò",
  Oacute: "Ó",
  Ocirc: "Ô",
  Otilde: "Õ",
  Ouml: "Ö",
  times: "×",
  Oslash: "Ø",
  Ugrave: "Ù",
  Uacute: "Ú",
  Ucirc: "Û",
  Uuml: "Ü",
  Yacute: "Ý",
  THORN: "Þ",
  szlig: "ß",
  agrave: "à",
  aacute: "á",
  acirc: "â",
  atilde: "ã",
  auml: "ä",
  aring: "å",
  aelig: "æ",
  ccedil: "ç",
  egrave: "è",
  eacute: "é",
  ecirc: "ê",
  euml: "ë",
  igrave: "ì",
  iacute: "í",
  icirc: "î",
  iuml: "ï",
  eth: "ð",
  ntilde: "ñ",
  ograve: "ò",
  oacute: "ó",
  ocirc: "ô",
  otilde: "õ",
  ouml: "ö",
  divide: "÷",
  oslash: "ø",
  ugrave: "ù",
  uacute: "ú",
  ucirc: "û",
  uuml: "ü",
  yacute: "ý",
  thorn: "þ",
  yuml: "ÿ",
  OElig: "Œ",
  oelig: "œ",
  Scaron: "Š",
  scaron: "š",
  Yuml: "Ÿ",
  fnof: "ƒ",
  circ: "ˆ",
  tilde: "˜",
  Alpha: "Α",
  Beta: "Β",
  Gamma: "Γ",
  Delta: "Δ",
  Omega: "Ω",
  alpha: "α",
  beta: "β",
  gamma: "γ",
  delta: "δ",
  epsilon: "ε",
  theta: "θ",
  lambda: "λ",
  mu: "μ",
  pi: "π",
  sigma: "σ",
  tau: "τ",
  phi: "φ",
  omega: "ω",
  ensp: "\u2002",
  emsp: "\u2003",
  thinsp: "\u2009",
  zwnj: "\u200c",
  zwj: "\u200d",
  lrm: "\u200e",
  rlm: "\u200f",
  ndash: "–",
  mdash: "—",
  lsquo: "‘",
  rsquo: "’",
  sbquo: "‚",
  ldquo: "“",
  rdquo: "”",
  bdquo: "„",
  dagger: "†",
  Dagger: "‡",
  bull: "•",
  hellip: "…",
  permil: "‰",
  prime: "′",
  Prime: "″",
  lsaquo: "‹",
  rsaquo: "›",
  oline: "‾",
  frasl: "⁄",
  euro: "€",
  trade: "™",
  larr: "←",
  uarr: "↑",
  rarr: "→",
  darr: "↓",
  harr: "↔",
  minus: "−",
  infin: "∞",
  ne: "≠",
  le: "≤",
  ge: "≥",
  spades: "♠",
  clubs: "♣",
  hearts: "♥",
  diams: "♦",
  loz: "◊",
};

const ENTITY = /&(?:#(\d{1,8})|#[xX]([0-9a-fA-F]{1,7})|([a-zA-Z][a-zA-Z0-9]{1,31}));/g;

function fromCodePoint(code: number): string {
  // NUL, surrogates and out-of-range code points become U+FFFD, as browsers do.
  if (code === 0 || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return "\ufffd";
  return String.fromCodePoint(code);
}

/**
 * Decodes HTML entities. Unknown names are left as they are. Text that was encoded twice
 * ("&amp;quot;", common in scraped alt-text) is decoded twice, no more.
 */
export function decodeEntities(text: string): string {
  if (!text.includes("&")) return text;
  let out = text;
  for (let pass = 0; pass < 2; pass++) {
    let decodedAmp = false;
    out = out.replace(ENTITY, (whole, dec?: string, hex?: string, name?: string) => {
      if (dec !== undefined) return fromCodePoint(Number.parseInt(dec, 10));
      if (hex !== undefined) return fromCodePoint(Number.parseInt(hex, 16));
      const value = name === undefined ? undefined : NAMED_ENTITIES[name];
      if (value === undefined) return whole;
      if (value === "&") decodedAmp = true;
      return value;
    });
    if (!decodedAmp || !out.includes("&")) break;
  }
  return out;
}

// A tag starts with a letter (or /letter, !, ?): "a < b", "<3" and "x<y" stay text.
const TAG = /<!--[\s\S]*?-->|<\/?[a-zA-Z][^<>]*>|<![^<>]*>|<\?[^<>]*>/g;
// C0 and C1 controls (whitespace among them handled below), DEL, zero-width and BOM characters.
// biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point
const CONTROL = /[\u0000-\u0008\u000e-\u001f\u007f-\u009f\u00ad\u200b\u2060\ufeff]/g;
const WHITESPACE = /\s+/g;

/** The cleaned caption: entities decoded, tags and controls removed, whitespace collapsed. */
export function cleanCaption(raw: string): string {
  let text = decodeEntities(raw);
  if (text.includes("<")) text = text.replace(TAG, " ");
  text = text.replace(CONTROL, "");
  // \s covers \t \n \v \f \r, NBSP, the Unicode spaces, U+2028/9 and U+3000.
  return text.replace(WHITESPACE, " ").trim();
}
