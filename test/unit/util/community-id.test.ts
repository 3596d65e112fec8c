import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { communityId, ipBytes } from '../../../src/util/community-id';

// Vectors from the Community ID spec's baseline (corelight/community-id-spec,
// baseline/baseline_deflt.json and baseline/baseline_seed1.json).
interface Vector {
  name: string;
  proto: number;
  saddr: string;
  sport: number;
  daddr: string;
  dport: number;
  seed0: string;
  seed1: string;
}

const VECTORS: Vector[] = [
  {
    name: 'TCP over IPv4',
    proto: 6,
    saddr: '128.232.110.120',
    sport: 34855,
    daddr: '66.35.250.204',
    dport: 80,
    seed0: '1:LQU9qZlK+B5F3KDmev6m5PMibrg=',
    seed1: '1:3V71V58M3Ksw/yuFALMcW0LAHvc=',
  },
  {
    name: 'TCP over IPv6',
    proto: 6,
    saddr: '2001:470:e5bf:dead:4957:2174:e82c:4887',
    sport: 63943,
    daddr: '2607:f8b0:400c:c03::1a',
    dport: 25,
    seed0: '1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=',
    seed1: '1:eJYTW6AOzFLlSUoESovMjnu7rMw=',
  },
  {
    name: 'UDP over IPv4',
    proto: 17,
    saddr: '192.168.1.52',
    sport: 54585,
    daddr: '8.8.8.8',
    dport: 53,
    seed0: '1:d/FP5EW3wiY1vCndhwleRRKHowQ=',
    seed1: '1:Q9We8WO3piVF8yEQBNJF4uiSVrI=',
  },
  {
    name: 'SCTP over IPv4 (equal ports)',
    proto: 132,
    saddr: '192.168.170.8',
    sport: 7,
    daddr: '192.168.170.56',
    dport: 7,
    seed0: '1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=',
    seed1: '1:5w3ZRjeKBzqT3zsaEECDGjUbYeg=',
  },
];

describe('communityId: spec baseline vectors', () => {
  for (const v of VECTORS) {
    test(`${v.name}, seed 0, both directions`, () => {
      assert.equal(communityId(v.saddr, v.sport, v.daddr, v.dport, v.proto, 0), v.seed0);
      assert.equal(communityId(v.daddr, v.dport, v.saddr, v.sport, v.proto, 0), v.seed0);
    });
    test(`${v.name}, seed 1, both directions`, () => {
      assert.equal(communityId(v.saddr, v.sport, v.daddr, v.dport, v.proto, 1), v.seed1);
      assert.equal(communityId(v.daddr, v.dport, v.saddr, v.sport, v.proto, 1), v.seed1);
    });
  }

  test('defaults are TCP and seed 0', () => {
    assert.equal(communityId('128.232.110.120', 34855, '66.35.250.204', 80), '1:LQU9qZlK+B5F3KDmev6m5PMibrg=');
    assert.equal(communityId('66.35.250.204', 80, '128.232.110.120', 34855), '1:LQU9qZlK+B5F3KDmev6m5PMibrg=');
  });

  test('same address on both ends: the lower port comes first, so both directions agree', () => {
    const a = communityId('127.0.0.1', 40000, '127.0.0.1', 8080);
    const b = communityId('127.0.0.1', 8080, '127.0.0.1', 40000);
    assert.equal(a, b);
    assert.match(a, /^1:[A-Za-z0-9+/]{27}=$/);
    assert.notEqual(a, communityId('127.0.0.1', 40001, '127.0.0.1', 8080));
  });

  test('the protocol and the seed change the id', () => {
    const tcp = communityId('10.0.0.1', 1234, '10.0.0.2', 80, 6, 0);
    assert.notEqual(tcp, communityId('10.0.0.1', 1234, '10.0.0.2', 80, 17, 0));
    assert.notEqual(tcp, communityId('10.0.0.1', 1234, '10.0.0.2', 80, 6, 2));
  });
});

describe('ipBytes', () => {
  test('IPv4 is 4 bytes in network order', () => {
    assert.deepEqual([...ipBytes('192.168.1.52')], [192, 168, 1, 52]);
    assert.deepEqual([...ipBytes('0.0.0.0')], [0, 0, 0, 0]);
    assert.deepEqual([...ipBytes('255.255.255.255')], [255, 255, 255, 255]);
  });

  test('full IPv6 without compression', () => {
    assert.equal(
      ipBytes('2001:470:e5bf:dead:4957:2174:e82c:4887').toString('hex'),
      '20010470e5bfdead49572174e82c4887',
    );
  });

  test('IPv6 with :: in the middle', () => {
    assert.equal(ipBytes('2607:f8b0:400c:c03::1a').toString('hex'), '2607f8b0400c0c03000000000000001a');
    assert.equal(ipBytes('fe80::200:86ff:fe05:80da').toString('hex'), 'fe80000000000000020086fffe0580da');
    assert.equal(ipBytes('3ffe:501:0:1001::2').toString('hex'), '3ffe0501000010010000000000000002');
  });

  test('IPv6 with :: at the start or the end', () => {
    assert.equal(ipBytes('::1').toString('hex'), '00000000000000000000000000000001');
    assert.equal(ipBytes('::').toString('hex'), '00000000000000000000000000000000');
    assert.equal(ipBytes('ff02::').toString('hex'), 'ff020000000000000000000000000000');
    assert.equal(ipBytes('ff02::2').toString('hex'), 'ff020000000000000000000000000002');
  });

  test('IPv6 is always 16 bytes', () => {
    for (const ip of ['::1', '::', 'fe80::1', '2001:db8::8:800:200c:417a', '::ffff:1.2.3.4']) {
      assert.equal(ipBytes(ip).length, 16, ip);
    }
  });

  test('v4-mapped ::ffff:1.2.3.4', () => {
    assert.equal(ipBytes('::ffff:1.2.3.4').toString('hex'), '00000000000000000000ffff01020304');
    assert.equal(ipBytes('::ffff:192.168.255.10').toString('hex'), '00000000000000000000ffffc0a8ff0a');
    // the same address written in hex groups
    assert.deepEqual(ipBytes('::ffff:102:304'), ipBytes('::ffff:1.2.3.4'));
  });
});
