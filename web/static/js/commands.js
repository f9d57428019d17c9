// commands.js: IRC-style commands typed in the composer.
//
//   /join room       join (or create) a room and open it      alias /j
//   /leave [room]    leave the open room or the named one      alias /part
//   /me action       an action line: "* alice waves"
//   /msg user text   a direct message                          alias /query
//   /topic [text]    set the open room's topic, or show it
//   /away [reason]   mark yourself away;  /back  online again
//   /help            list the commands
//   /kick user       (admins) remove a user from the open room
//   /ban user        (admins) ban a user from chatd
//
// "/me waves" is posted as the text "/me waves" (see message-view.js for why);
// "//text" posts "/text" literally.

import { api, path } from './api.js';
import { ACTION_PREFIX } from './message-view.js';

const ROOM_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const USER_NAME = /^[A-Za-z0-9_.-]{1,32}$/;

function need(cond, message) {
  if (!cond) throw new UsageError(message);
}

/** UsageError is a mistake in a typed command, shown to the user as is. */
export class UsageError extends Error {}

function roomArg(arg) {
  const name = arg.replace(/^#/, '').toLowerCase();
  need(ROOM_NAME.test(name), `"${arg}" is not a room name: use lower-case letters, digits, _ and -.`);
  return name;
}

function userArg(arg, usage) {
  const name = arg.replace(/^@/, '');
  need(name, `Usage: ${usage}`);
  need(USER_NAME.test(name), `"${arg}" is not a user name.`);
  return name;
}

const commands = {
  join: {
    usage: '/join room',
    help: 'join a room, creating it if it does not exist, and open it',
    async run(app, args) {
      need(args, 'Usage: /join room');
      const room = roomArg(args.split(/\s+/)[0]);
      await app.joinRoom(room, { create: true });
    },
  },
  leave: {
    usage: '/leave [room]',
    help: 'leave the open room, or the named one',
    async run(app, args) {
      const room = args ? roomArg(args.split(/\s+/)[0]) : app.current;
      need(room, 'You are not in a room.');
      await app.leaveRoom(room);
    },
  },
  me: {
    usage: '/me action',
    help: 'describe what you do: "/me waves" shows as "* you waves"',
    async run(app, args) {
      need(args, 'Usage: /me action');
      await app.sendText(ACTION_PREFIX + args);
    },
  },
  msg: {
    usage: '/msg user text',
    help: 'send a direct message and open the conversation',
    async run(app, args) {
      const m = /^(\S+)\s+([\s\S]+)$/.exec(args);
      need(m, 'Usage: /msg user text');
      await app.sendDirect(userArg(m[1], '/msg user text'), m[2]);
    },
  },
  topic: {
    usage: '/topic [text]',
    help: 'set the topic of the open room, or show it',
    async run(app, args) {
      need(app.current, 'You are not in a room.');
      if (!args) {
        const topic = app.rooms.get(app.current)?.room.topic;
        app.notice(topic ? `The topic is: ${topic}` : `${app.roomLabel(app.current)} has no topic.`);
        return;
      }
      await app.setTopic(app.current, args);
    },
  },
  away: {
    usage: '/away',
    help: 'mark yourself away',
    async run(app) {
      await app.setPresence('away');
    },
  },
  back: {
    usage: '/back',
    help: 'mark yourself online again',
    async run(app) {
      await app.setPresence('online');
    },
  },
  help: {
    usage: '/help',
    help: 'list the commands',
    async run(app) {
      const lines = ['Commands:'];
      for (const c of Object.values(commands)) {
        if (c.admin && app.me.role !== 'admin') continue;
        lines.push(`  ${c.usage.padEnd(16)} ${c.help}${c.admin ? ' (admins)' : ''}`);
      }
      lines.push('Enter sends, Shift+Enter adds a line, Up edits your last message. Start with // to send a leading /.');
      app.notice(lines.join('\n'));
    },
  },
  kick: {
    usage: '/kick user',
    help: 'remove a user from the open room',
    admin: true,
    async run(app, args) {
      const user = userArg(args.split(/\s+/)[0] || '', '/kick user');
      need(app.current, 'You are not in a room.');
      await api('POST', path`/api/admin/rooms/${app.current}/kick`, { user });
      app.notice(`${user} was removed from ${app.roomLabel(app.current)}.`);
    },
  },
  ban: {
    usage: '/ban user',
    help: 'ban a user: their sessions end at once',
    admin: true,
    async run(app, args) {
      const user = userArg(args.split(/\s+/)[0] || '', '/ban user');
      await api('POST', path`/api/admin/users/${user}/ban`);
      app.notice(`${user} is banned.`);
    },
  },
};

const aliases = { j: 'join', part: 'leave', query: 'msg', w: 'msg' };

/** parse splits composer input into a command and its arguments, or returns
 * null if the input is a message. "//text" is the message "/text". */
export function parse(input) {
  if (!input.startsWith('/') || input.startsWith('//')) return null;
  const m = /^\/(\S*)\s*([\s\S]*)$/.exec(input);
  return { name: m[1].toLowerCase(), args: m[2].trim() };
}

/** run executes a parsed command. It throws UsageError for typing mistakes
 * and ApiError when the server refuses. */
export async function run(app, { name, args }) {
  const cmd = commands[aliases[name] || name];
  if (!cmd) throw new UsageError(`Unknown command /${name}. Type /help for the list.`);
  if (cmd.admin && app.me.role !== 'admin') throw new UsageError(`/${name} is for admins only.`);
  await cmd.run(app, args);
}
