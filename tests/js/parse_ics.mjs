// Parse an iCalendar file with Mozilla's ical.js and print what it understood as JSON,
// so the Python tests (tests/feeds) can compare it with what `icalendar` understood.
//
//   node tests/js/parse_ics.mjs FILE.ics      (or the calendar on standard input)
//
// Every VTIMEZONE of the file is registered first, so a DTSTART with a TZID is resolved
// through the file's own zone definition (as a calendar client does), not the host's.
// Output: {"calendar": {...}, "timezones": [...], "events": [...]}; a parse error exits 1.
import { readFileSync } from "node:fs";
import ICAL from "ical.js";

function when(property) {
  if (!property) {
    return null;
  }
  const time = property.getFirstValue();
  const tzid = property.getParameter("tzid") || null;
  const zone = time.zone && time.zone.tzid !== "floating" ? time.zone.tzid : null;
  return {
    tzid,
    zone,
    is_date: time.isDate,
    local: time.toString(),
    utc: time.isDate ? null : time.toJSDate().toISOString(),
  };
}

function text(component, name) {
  const value = component.getFirstPropertyValue(name);
  return value === null || value === undefined ? null : String(value);
}

function event(vevent) {
  const sequence = vevent.getFirstPropertyValue("sequence");
  return {
    uid: text(vevent, "uid"),
    summary: text(vevent, "summary"),
    description: text(vevent, "description"),
    location: text(vevent, "location"),
    url: text(vevent, "url"),
    status: text(vevent, "status"),
    transp: text(vevent, "transp"),
    sequence: sequence === null ? null : Number(sequence),
    dtstamp: when(vevent.getFirstProperty("dtstamp")),
    created: when(vevent.getFirstProperty("created")),
    last_modified: when(vevent.getFirstProperty("last-modified")),
    start: when(vevent.getFirstProperty("dtstart")),
    end: when(vevent.getFirstProperty("dtend")),
    organizer: text(vevent, "organizer"),
    attendees: vevent.getAllProperties("attendee").length,
  };
}

const source = readFileSync(process.argv[2] || 0, "utf8");
const root = new ICAL.Component(ICAL.parse(source));
const timezones = root.getAllSubcomponents("vtimezone");
for (const vtimezone of timezones) {
  ICAL.TimezoneService.register(vtimezone);
}
const duration = (name) => {
  const value = root.getFirstPropertyValue(name);
  if (value === null || value === undefined) {
    return null;
  }
  // An unknown X- property comes back as text: read it as a DURATION all the same.
  return (typeof value === "string" ? ICAL.Duration.fromString(value) : value).toSeconds();
};
const output = {
  calendar: {
    version: text(root, "version"),
    prodid: text(root, "prodid"),
    calscale: text(root, "calscale"),
    method: text(root, "method"),
    name: text(root, "name"),
    x_wr_calname: text(root, "x-wr-calname"),
    refresh_interval_seconds: duration("refresh-interval"),
    x_published_ttl_seconds: duration("x-published-ttl"),
  },
  timezones: timezones.map((tz) => tz.getFirstPropertyValue("tzid")),
  events: root.getAllSubcomponents("vevent").map(event),
};
process.stdout.write(JSON.stringify(output));
