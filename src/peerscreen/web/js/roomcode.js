// Room codes as people type or paste them: a code in any case, with or without dashes or
// spaces, or the whole room link. No DOM code here; ids.py is the server's side of it.

const ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz";
const GROUPS = [4, 5, 4];
const LENGTH = GROUPS.reduce((a, b) => a + b, 0);

/**
 * The canonical room code in ``text`` (a code, or a link ending in /r/<code>), or null.
 * @param {string} text
 * @returns {string | null}
 */
export function roomCodeFrom(text) {
  let candidate = text.trim();
  const link = candidate.match(/\/r\/([^/?#\s]+)/);
  if (link) candidate = decodeURIComponent(link[1]);
  const compact = candidate.toLowerCase().replace(/[\s\-_.]+/g, "");
  if (compact.length !== LENGTH || [...compact].some((c) => !ALPHABET.includes(c))) return null;
  const parts = [];
  let start = 0;
  for (const size of GROUPS) {
    parts.push(compact.slice(start, start + size));
    start += size;
  }
  return parts.join("-");
}
