// time.js: how timestamps read on the page (the viewer's locale and zone).

const clock = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const dayAndClock = new Intl.DateTimeFormat(undefined, {
  weekday: 'short', day: 'numeric', month: 'short', hour: 'numeric', minute: '2-digit',
});
const full = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

/** shortTime is "14:05" today and "Mon 3 Mar, 14:05" on other days. */
export function shortTime(ts) {
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return '';
  return sameDay(d, new Date()) ? clock.format(d) : dayAndClock.format(d);
}

/** longTime is the full date and time, for tooltips. */
export function longTime(ts) {
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? '' : full.format(d);
}
