/**
 * What may be a reaction: one Unicode emoji sequence (as Unicode's RGI set
 * defines them: flags, skin tones, ZWJ families, keycaps), or a :shortcode:
 * of 1 to 64 characters of a-z, 0-9, '_', '+' and '-' for custom emoji.
 */
import { invalid } from "../validate.js";

const SHORTCODE = /^:[a-z0-9_+-]{1,64}:$/;
// The v flag's \p{RGI_Emoji} matches exactly one recommended emoji sequence
// (built at run time: the compiler's ES2022 target does not know the flag; Node 20 does).
const ONE_EMOJI = new RegExp("^\\p{RGI_Emoji}$", "v");
/** Emoji Presentation Selector: clients often send "❤" + U+FE0F, sometimes without; both are the same reaction. */
const VS16 = "\uFE0F";

export function requireEmoji(field: string, value: string): string {
  if (value === "") throw invalid(field, "required");
  if (SHORTCODE.test(value)) return value;
  if (value.length <= 64) {
    const normalized = value.normalize("NFC");
    if (ONE_EMOJI.test(normalized)) return normalized;
    // A character that is an emoji only with the presentation selector (☺ → ☺️).
    if (!normalized.endsWith(VS16) && ONE_EMOJI.test(normalized + VS16)) return normalized + VS16;
  }
  throw invalid(field, "must be one emoji, or a :shortcode: of 1 to 64 characters of a-z, 0-9, '_', '+' and '-'");
}
