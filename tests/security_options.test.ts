/**
 * Z85, CURVE keys, the key files and authorized-keys files, and the security options of a
 * socket: what is accepted, and the clear error for each garbage key or contradiction.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  allowCurveKeys,
  curveKeyPair,
  curvePublicKey,
  Dealer,
  formatSecretKeyFile,
  parseAuthorizedKeys,
  parseSecretKeyFile,
  Router,
  SocketError,
  z85Decode,
  z85Encode,
} from "../mod.ts";
import {
  boxKey,
  frameBoxes,
  generateKeyPair,
  loadFastBoxes,
  NOBLE_BOXES,
  open,
  seal,
} from "../src/zmtp/curve_crypto.ts";

const fromHex = (h: string) => Uint8Array.from(h.match(/../g)!, (x) => parseInt(x, 16));
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const PYTHON = "/usr/bin/python3";
const pyzmq = spawnSync(PYTHON, ["-c", "import zmq"], { stdio: "ignore" }).status === 0;

function einval(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof SocketError, `expected SocketError, got ${error}`);
    assert.equal(error.code, "EINVAL");
    assert.match(error.message, pattern);
    return true;
  });
}

describe("Z85", () => {
  test("RFC 32's test vector", { timeout: 60_000 }, () => {
    const bytes = fromHex("864fd26fb559f75b");
    assert.equal(z85Encode(bytes), "HelloWorld");
    assert.deepEqual(z85Decode("HelloWorld"), bytes);
  });

  test("libzmq's test key pair decodes and encodes back", { timeout: 60_000 }, () => {
    // From libzmq's tests (testutil_security.cpp): a server key pair.
    const pub = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    const sec = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6";
    assert.equal(z85Encode(z85Decode(pub)), pub);
    assert.equal(
      curvePublicKey(sec),
      pub,
      "the public key of libzmq's secret key is its public key",
    );
  });

  test(
    "wrong lengths, foreign characters and groups past 32 bits are refused",
    { timeout: 60_000 },
    () => {
      assert.throws(() => z85Encode(new Uint8Array(5)), /groups of 4 bytes/);
      assert.equal(z85Decode("Hello").length, 4);
      assert.throws(() => z85Decode("Hell"), /groups of 5/);
      assert.throws(() => z85Decode("Hell~"), /not in the Z85 alphabet/);
      assert.throws(() => z85Decode("#####"), /larger than 32 bits/);
    },
  );
});

describe("crypto_box from audited primitives", () => {
  test("crypto_box_beforenm matches NaCl's test vector", { timeout: 60_000 }, () => {
    const aliceSecret = fromHex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    const bobPublic = fromHex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    assert.equal(
      hex(boxKey(bobPublic, aliceSecret)!),
      "1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389",
    );
  });

  test("a low-order public key gives no shared key; a flipped bit makes a box not open", {
    timeout: 60_000,
  }, () => {
    assert.equal(boxKey(new Uint8Array(32), fromHex("77".repeat(32))), null);
    const key = new Uint8Array(32).fill(9);
    const nonce = new Uint8Array(24);
    const box = seal(key, nonce, new TextEncoder().encode("hello"));
    assert.equal(new TextDecoder().decode(open(key, nonce, box)!), "hello");
    box[3] ^= 1;
    assert.equal(open(key, nonce, box), null);
  });
});

describe("the two box engines", () => {
  test("libsodium loads, and it and @noble/ciphers make the same boxes and open each other's", {
    timeout: 60_000,
  }, async () => {
    const fast = await loadFastBoxes();
    assert.ok(fast !== null, "libsodium-wrappers did not load");
    assert.equal(frameBoxes().name, "libsodium");
    const alice = generateKeyPair();
    const bob = generateKeyPair();
    assert.equal(
      hex(fast.boxKey(bob.publicKey, alice.secretKey)!),
      hex(NOBLE_BOXES.boxKey(bob.publicKey, alice.secretKey)!),
      "the same shared key",
    );
    assert.equal(fast.boxKey(new Uint8Array(32), alice.secretKey), null, "low-order key refused");
    const key = crypto.getRandomValues(new Uint8Array(32));
    for (const size of [0, 1, 64, 255, 4096, 1 << 20]) {
      const nonce = crypto.getRandomValues(new Uint8Array(24));
      const plain = crypto.getRandomValues(new Uint8Array(Math.min(size, 65536)));
      const big = size > plain.length ? new Uint8Array(size).fill(7) : plain;
      const a = fast.seal(key, nonce, big);
      const b = NOBLE_BOXES.seal(key, nonce, big);
      assert.equal(hex(a), hex(b), `${size} bytes: the same box`);
      assert.deepEqual(NOBLE_BOXES.open(key, nonce, a), big);
      assert.deepEqual(fast.open(key, nonce, b), big);
      a[a.length - 1] ^= 1;
      assert.equal(fast.open(key, nonce, a), null);
      assert.equal(NOBLE_BOXES.open(key, nonce, a), null);
    }
  });
});

describe("keys and key files", () => {
  test("curveKeyPair gives 40-character Z85 keys that belong together", { timeout: 60_000 }, () => {
    const pair = curveKeyPair();
    assert.equal(pair.publicKey.length, 40);
    assert.equal(curvePublicKey(pair.secretKey), pair.publicKey);
    assert.notEqual(curveKeyPair().secretKey, pair.secretKey);
  });

  test("zmq.curve_public agrees with ours on a key pair we made", {
    skip: !pyzmq && "pyzmq missing",
    timeout: 60_000,
  }, () => {
    const pair = curveKeyPair();
    const py = spawnSync(PYTHON, [
      "-c",
      "import sys, zmq; print(zmq.curve_public(sys.argv[1].encode()).decode())",
      pair.secretKey,
    ], { encoding: "utf8" });
    assert.equal(py.stdout.trim(), pair.publicKey);
  });

  test(
    "the secret key file round-trips, in the certificate format or bare",
    { timeout: 60_000 },
    () => {
      const pair = curveKeyPair();
      const file = formatSecretKeyFile(pair);
      assert.match(file, /secret-key = "/);
      assert.deepEqual(parseSecretKeyFile(file), pair);
      assert.deepEqual(parseSecretKeyFile(`# a comment\n${pair.secretKey}\n`), pair);
      assert.throws(() => parseSecretKeyFile("nothing here"), /no CURVE secret key found/);
    },
  );

  test("authorized keys: keys with names, comments, blank lines; a bad line is named", {
    timeout: 60_000,
  }, () => {
    const a = curveKeyPair().publicKey;
    const b = curveKeyPair().publicKey;
    const keys = parseAuthorizedKeys(`# workers\n\n${a}  gpu-box 1\n  ${b}\n#${a}\n`);
    assert.deepEqual(keys, [{ publicKey: a, comment: "gpu-box 1" }, { publicKey: b }]);
    assert.throws(
      () => parseAuthorizedKeys(`${a}\nnot-a-key\n`),
      /line 2: "not-a-key" is not a 40-character Z85 public key/,
    );
  });

  test("allowCurveKeys admits listed keys with their name, refuses others and PLAIN", {
    timeout: 60_000,
  }, () => {
    const listed = curveKeyPair().publicKey;
    const other = curveKeyPair().publicKey;
    const check = allowCurveKeys([{ publicKey: listed, comment: "gpu-1" }]);
    const base = { address: "127.0.0.1:1", routingId: new Uint8Array(0), domain: "" };
    assert.deepEqual(check({ ...base, mechanism: "CURVE", publicKeyZ85: listed }), {
      allow: true,
      userId: "gpu-1",
    });
    const refused = check({ ...base, mechanism: "CURVE", publicKeyZ85: other }) as {
      allow: boolean;
      reason: string;
    };
    assert.equal(refused.allow, false);
    assert.match(refused.reason, new RegExp(`not among the 1 authorized keys`));
    assert.equal((check({ ...base, mechanism: "PLAIN" }) as { allow: boolean }).allow, false);
  });
});

describe("security options of a socket", () => {
  const server = curveKeyPair();
  const client = curveKeyPair();

  test("garbage keys are refused at construction with EINVAL, naming the option", {
    timeout: 60_000,
  }, () => {
    einval(
      () => new Dealer({ curveServerKey: "short", curveSecretKey: client.secretKey }),
      /curveServerKey must be 40 Z85 characters/,
    );
    einval(
      () => new Dealer({ curveServerKey: server.publicKey, curveSecretKey: new Uint8Array(31) }),
      /curveSecretKey must be 32 bytes/,
    );
    einval(
      () => new Dealer({ curveServerKey: "~".repeat(40), curveSecretKey: client.secretKey }),
      /curveServerKey is not Z85/,
    );
    einval(
      () =>
        new Dealer({
          curveServerKey: server.publicKey,
          curveSecretKey: client.secretKey,
          curvePublicKey: server.publicKey,
        }),
      /curvePublicKey .* is not the public key of curveSecretKey/,
    );
    einval(
      () =>
        new Dealer({
          curveServerKey: "0000000000000000000000000000000000000000", // the null key
          curveSecretKey: client.secretKey,
        }),
      /not a usable Curve25519 public key/,
    );
  });

  test("missing or contradictory options are refused with EINVAL", { timeout: 60_000 }, () => {
    einval(() => new Router({ curveServer: true }), /needs curveSecretKey/);
    einval(() => new Dealer({ curveServerKey: server.publicKey }), /needs curveSecretKey/);
    einval(
      () => new Router({ curveServer: true, curveSecretKey: server.secretKey, plainServer: true }),
      /CURVE and PLAIN/,
    );
    einval(
      () =>
        new Router({
          curveServer: true,
          curveSecretKey: server.secretKey,
          curveServerKey: server.publicKey,
        }),
      /curveServer is set together with curveServerKey/,
    );
    einval(() => new Dealer({ plainUsername: "x".repeat(256) }), /at most 255 bytes/);
  });

  test("valid options make sockets; keys may be bytes", { timeout: 60_000 }, () => {
    new Router({ curveServer: true, curveSecretKey: z85Decode(server.secretKey) }).close();
    new Dealer({
      curveServerKey: z85Decode(server.publicKey),
      curveSecretKey: client.secretKey,
      curvePublicKey: client.publicKey,
    }).close();
    new Router({ plainServer: true, authenticator: () => true, zapDomain: "global" }).close();
  });
});
