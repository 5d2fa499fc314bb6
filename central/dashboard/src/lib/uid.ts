// Device uids as central accepts them: a MAC (ESP boards, Pis) or a LoRaWAN DevEUI.
// Checked here so the form says what is wrong before the round trip; central checks again.

export type UidKind = "ethernet" | "deveui";

const HEX = /^[0-9a-f]+$/;

/** The canonical form (`24:0a:c4:12:34:56`, `70b3d57ed0000001`) and kind, or an error text. */
export function parseUid(input: string): { uid: string; kind: UidKind } | { error: string } {
  const compact = input.trim().toLowerCase().replace(/[:\-.\s]/g, "");
  if (!compact) return { error: "enter a MAC address or a DevEUI" };
  if (!HEX.test(compact)) return { error: "only hexadecimal digits and separators (: - .)" };
  if (compact.length === 12) {
    return { uid: compact.match(/../g)!.join(":"), kind: "ethernet" };
  }
  if (compact.length === 16) return { uid: compact.toUpperCase(), kind: "deveui" };
  return { error: `a MAC has 12 hex digits and a DevEUI 16; this has ${compact.length}` };
}
