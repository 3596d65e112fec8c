import { test } from 'node:test';
import assert from 'node:assert/strict';

import { firstKeyword, splitStatements } from '../../../../src/protocols/pgsql/sql';

function split(sql: string): string[] {
  const b = Buffer.from(sql, 'utf8');
  return splitStatements(b, 0, b.length).map((r) => b.toString('utf8', r.start, r.end));
}

test('statements are split at top-level semicolons, trimmed, empty ones left out', () => {
  assert.deepEqual(split('select 1'), ['select 1']);
  assert.deepEqual(split('  select 1;  \n'), ['select 1']);
  assert.deepEqual(split('select 1; select 2;select 3'), ['select 1', 'select 2', 'select 3']);
  assert.deepEqual(split(';; select 1;;\n;'), ['select 1']);
  assert.deepEqual(split(''), []);
  assert.deepEqual(split(' ;\t; '), []);
});

test('semicolons inside strings, identifiers, dollar quotes and comments do not split', () => {
  assert.deepEqual(split("insert into t values ('a;b', 'it''s; fine'); select 2"), ["insert into t values ('a;b', 'it''s; fine')", 'select 2']);
  assert.deepEqual(split('select "we;ird" from "t;"; select 2'), ['select "we;ird" from "t;"', 'select 2']);
  assert.deepEqual(split("select E'a\\';b'; select 2"), ["select E'a\\';b'", 'select 2']);
  assert.deepEqual(split("select 'a\\'; select 2"), ["select 'a\\'", 'select 2'], 'standard strings: backslash is not an escape');
  assert.deepEqual(split('select $$a;b$$, $x$ $$;$ $x$; select $1'), ['select $$a;b$$, $x$ $$;$ $x$', 'select $1']);
  assert.deepEqual(split('select 1 -- a; comment\n; select 2'), ['select 1 -- a; comment', 'select 2']);
  assert.deepEqual(split('select /* a; /* nested; */ b; */ 1; select 2'), ['select /* a; /* nested; */ b; */ 1', 'select 2']);
  assert.deepEqual(split('select a$b; select 2'), ['select a$b', 'select 2'], '$ inside an identifier is no quote');
});

test('comment-only statements are no statements; their bytes go to a neighbour', () => {
  const sql = 'select 1; -- done\n';
  const b = Buffer.from(sql);
  const r = splitStatements(b, 0, b.length);
  assert.equal(r.length, 1);
  assert.equal(r[0]!.segStart, 0);
  assert.deepEqual(split('-- only a comment'), []);
  assert.deepEqual(split('/* c */ select 1; /* d */'), ['/* c */ select 1']);
  const two = Buffer.from('select 1;  select 2');
  assert.deepEqual(
    splitStatements(two, 0, two.length).map((x) => x.segStart),
    [0, 9],
  );
});

test('CREATE FUNCTION ... BEGIN ATOMIC ... END keeps its semicolons (as psql does)', () => {
  const fn = 'create function f() returns int language sql begin atomic select 1; select case when true then 2 end; end';
  assert.deepEqual(split(`${fn}; select 3`), [fn, 'select 3']);
  const proc = 'CREATE OR REPLACE PROCEDURE p() BEGIN ATOMIC insert into t values (1); END';
  assert.deepEqual(split(`${proc};select 4`), [proc, 'select 4']);
  // a transaction block is no routine body
  assert.deepEqual(split('begin; select 1; end;'), ['begin', 'select 1', 'end']);
});

test('unterminated quotes run to the end of the text (a cut query)', () => {
  assert.deepEqual(split("select 1; select 'abc; def"), ['select 1', "select 'abc; def"]);
  assert.deepEqual(split('select 1; select $$abc; def'), ['select 1', 'select $$abc; def']);
});

test('UTF-8 text is split on bytes without decoding', () => {
  assert.deepEqual(split("select 'héllo; wörld'; select 'ünïcode'"), ["select 'héllo; wörld'", "select 'ünïcode'"]);
});

test('first keyword, upper-cased, after spaces, comments and parentheses', () => {
  assert.equal(firstKeyword('select * from test'), 'SELECT');
  assert.equal(firstKeyword('  \r\n\tInsert into t values (1)'), 'INSERT');
  assert.equal(firstKeyword('/* app=x */ -- c\n update t set a = 1'), 'UPDATE');
  assert.equal(firstKeyword('(select 1) union (select 2)'), 'SELECT');
  assert.equal(firstKeyword('with x as (select 1) select * from x'), 'WITH');
  assert.equal(firstKeyword(''), '');
  assert.equal(firstKeyword('select\r\n1'), 'SELECT');
});
