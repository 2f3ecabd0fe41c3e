import { BlockList, isIPv6 } from 'node:net';

/** `::ffff:10.0.0.1` (an IPv4 peer on a dual-stack socket) is `10.0.0.1`. */
export function normaliseIp(ip: string): string {
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}

/**
 * Whether `ip` is inside an allowlist of addresses and CIDR blocks; an empty or absent list allows
 * every address, an unknown address is allowed by no list.
 *
 * @example ipAllowed(['10.0.0.0/8'], '10.1.2.3') // true
 */
export function ipAllowed(list: readonly string[] | null | undefined, ip: string | null): boolean {
  if (!list || list.length === 0) return true;
  if (!ip) return false;
  const blocks = new BlockList();
  for (const entry of list) {
    const [address, prefix] = entry.split('/');
    const type = isIPv6(address!) ? 'ipv6' : 'ipv4';
    if (prefix) blocks.addSubnet(address!, Number(prefix), type);
    else blocks.addAddress(address!, type);
  }
  const peer = normaliseIp(ip);
  return blocks.check(peer, isIPv6(peer) ? 'ipv6' : 'ipv4');
}
