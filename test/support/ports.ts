/**
 * Ports for tests that choose them up front and hand them to servers that bind them later.
 *
 * `freePort()` (src/temporal/dev-server.ts) binds port 0 and closes it, so its port comes from the
 * kernel's ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`, 32768–60999 by default), the
 * range every outgoing connection and every server binding port 0 (the dev server's internal
 * services, the worker's gRPC channels) also draws from: between the pick and the bind another
 * process can take it. The fresh-clone CI lost 127.0.0.1:32845 that way, and two picks can even
 * be the same port. These are distinct, free when picked, and outside the ephemeral range.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const handedOut = new Set<number>();

/** The ports no one gets by binding port 0: below the ephemeral range, or above it. */
function unclaimedRange(): { low: number; high: number } {
  let ephemeral = { low: 32_768, high: 60_999 };
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    if (low !== undefined && high !== undefined && low > 0 && high >= low) ephemeral = { low, high };
  } catch {
    // Not Linux: keep the default range.
  }
  if (ephemeral.low > 11_000)
    return { low: Math.max(10_000, ephemeral.low - 12_000), high: ephemeral.low - 1 };
  if (ephemeral.high < 64_000) return { low: ephemeral.high + 1, high: 65_535 };
  throw new Error(`the ephemeral port range ${ephemeral.low}-${ephemeral.high} leaves no ports to pick from`);
}

function canBind(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/** A port free now, never handed out before in this process, outside the ephemeral range. */
export async function unusedPort(host = '127.0.0.1'): Promise<number> {
  const { low, high } = unclaimedRange();
  for (let tries = 0; tries < 500; tries += 1) {
    const port = low + Math.floor(Math.random() * (high - low + 1));
    if (handedOut.has(port)) continue;
    if (await canBind(port, host)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port in ${low}-${high} after 500 tries`);
}
