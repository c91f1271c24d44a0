// An independent ACP client on the official TypeScript SDK (@agentclientprotocol/sdk): it runs a whole
// session against `cadre acp`, checks the updates it receives, and prints a JSON summary on stdout.
// Exit code 0 when every check passed; 1 with the failed check on stderr otherwise.
//
// Usage: node client.mjs REPO CADRE_BIN [ARGS...]   (the agent is `CADRE_BIN ARGS... acp`)

import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Readable, Writable } from "node:stream";
import assert from "node:assert/strict";
import * as acp from "@agentclientprotocol/sdk";

const [repo, bin, ...args] = process.argv.slice(2);
if (!repo || !bin) {
  console.error("usage: node client.mjs REPO CADRE_BIN [ARGS...]");
  process.exit(2);
}

/** Starts `cadre acp` and connects the SDK's client to it; `run` gets the agent context. */
async function withAgent(handlers, run) {
  const child = spawn(bin, [...args, "acp"], { stdio: ["pipe", "pipe", "inherit"] });
  const exited = new Promise((resolve) => child.on("exit", (code) => resolve(code)));
  const stream = acp.ndJsonStream(Writable.toWeb(child.stdin), Readable.toWeb(child.stdout));
  let app = acp.client({ name: "cadre-node-check" });
  for (const [method, handler] of handlers.requests) app = app.onRequest(method, handler);
  app = app.onNotification(acp.methods.client.session.update, handlers.update);
  try {
    return await app.connectWith(stream, run);
  } finally {
    child.stdin.end();
    const code = await exited;
    assert.equal(code, 0, `cadre acp exited with ${code} after stdin closed`);
  }
}

const updates = [];
const written = [];
const asked = [];
const handlers = {
  update: ({ params }) => {
    updates.push(params);
  },
  requests: [
    [
      acp.methods.client.session.requestPermission,
      ({ params }) => {
        asked.push(params);
        return { outcome: { outcome: "selected", optionId: "allow-once" } };
      },
    ],
    [acp.methods.client.fs.readTextFile, ({ params }) => ({ content: readFileSync(params.path, "utf8") })],
    [
      acp.methods.client.fs.writeTextFile,
      ({ params }) => {
        // The editor saves the buffer it was given.
        written.push(params.path);
        writeFileSync(params.path, params.content);
        return {};
      },
    ],
  ],
};

const init = {
  protocolVersion: acp.PROTOCOL_VERSION,
  clientCapabilities: { fs: { readTextFile: true, writeTextFile: true } },
  clientInfo: { name: "cadre-node-check", version: "0.0.0" },
};

// One session: initialize, new session, a prompt that ends with the change allowed.
const first = await withAgent(handlers, async (ctx) => {
  const hello = await ctx.request(acp.methods.agent.initialize, init);
  assert.equal(hello.protocolVersion, 1);
  assert.equal(hello.agentCapabilities.loadSession, true);
  assert.equal(hello.agentCapabilities.promptCapabilities.embeddedContext, true);
  const { sessionId } = await ctx.request(acp.methods.agent.session.new, { cwd: repo, mcpServers: [] });
  const response = await ctx.request(acp.methods.agent.session.prompt, {
    sessionId,
    prompt: [
      { type: "text", text: "make add() add" },
      { type: "resource_link", name: "calc.py", uri: `file://${join(repo, "calc.py")}` },
    ],
  });
  return { sessionId, stopReason: response.stopReason };
});

assert.equal(first.stopReason, "end_turn");
const kinds = updates.map((n) => n.update.sessionUpdate);
assert.equal(kinds[0], "agent_message_chunk", `first update: ${kinds[0]}`);
assert.ok(updates.every((n) => n.sessionId === first.sessionId), "every update names the session");
const plans = updates.filter((n) => n.update.sessionUpdate === "plan").map((n) => n.update.entries);
assert.ok(plans.length >= 3, `plan updates: ${plans.length}`);
assert.ok(
  plans.at(-1).every((e) => e.status === "completed"),
  `last plan: ${JSON.stringify(plans.at(-1))}`,
);
const calls = updates.filter((n) => n.update.sessionUpdate === "tool_call").map((n) => n.update);
const titles = calls.map((c) => c.title);
for (const wanted of ["Index the repository", "Run the tests (round 1)", "Apply the change of round 1 to 1 file(s)"]) {
  assert.ok(titles.includes(wanted), `tool call "${wanted}" in ${JSON.stringify(titles)}`);
}
assert.ok(titles.indexOf("Index the repository") < titles.indexOf("Run the tests (round 1)"), "index before tests");
const proposal = calls.find((c) => c.title.startsWith("Apply the change"));
const diff = proposal.content.find((c) => c.type === "diff");
assert.ok(diff, "the proposal carries a diff");
assert.match(diff.newText, /return a \+ b/);
assert.match(diff.oldText, /return a - b/);
assert.equal(asked.length, 1, "consent asked once");
assert.deepEqual(
  asked[0].options.map((o) => o.kind),
  ["allow_once", "allow_always", "reject_once"],
);
assert.deepEqual(written, [join(repo, "calc.py")], "written through fs/write_text_file");
const text = updates
  .filter((n) => n.update.sessionUpdate === "agent_message_chunk")
  .map((n) => n.update.content.text)
  .join("");
assert.match(text, /spent/, "cost in the messages");
assert.match(text, /applied round 1/);

// A second editor start loads the session: its history comes back as updates.
const live = updates.length;
await withAgent(handlers, async (ctx) => {
  await ctx.request(acp.methods.agent.initialize, init);
  await ctx.request(acp.methods.agent.session.load, { sessionId: first.sessionId, cwd: repo, mcpServers: [] });
});
const replay = updates.slice(live);
assert.equal(replay[0].update.sessionUpdate, "user_message_chunk");
assert.match(replay[0].update.content.text, /make add\(\) add/);
assert.ok(replay.some((n) => n.update.sessionUpdate === "tool_call"), "tool calls replayed");

console.log(
  JSON.stringify({ ok: true, sessionId: first.sessionId, stopReason: first.stopReason, kinds, replayed: replay.length }),
);
