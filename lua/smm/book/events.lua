-- The outbox: every event is a row written in the same transaction as the change it tells of,
-- so a change and its event are recorded together or not at all. Delivery (smm.book.hooks)
-- reads the rows later and marks them delivered; a receiver may see one twice and dedupes by id.
--
-- Event types: order.placed, order.failed, order.in_doubt, order.resolved, order.status
-- (old and new), order.final, order.stale, refill.placed, refill.status.
-- Of each panel of smm.router (ref empty, panel its URL, data.name its name): panel.down,
-- panel.up, panel.low_balance (smm.book.panels).
-- From the catalog's watch (smm.router.catalog, smm.router.watch; ref empty, panel the panel's
-- URL, data.name its name, data.service_name the service's): service.added, service.removed,
-- service.rate (old, new, change, percent, direction), service.bounds, service.flags; and
-- (panel empty) product.orphaned, product.cheapest.
local json = require "smm.json"

local M = {}

local function iso(t) return t and os.date("!%Y-%m-%dT%H:%M:%SZ", t) or nil end
M.iso = iso

-- data: the event's own fields (plain values; money as exact strings). Written inside the
-- caller's transaction.
function M.emit(db, now, type_, ref, panel, data)
  data = data or {}
  data.type, data.ref, data.panel, data.at = type_, ref, panel, iso(now)
  db:run("INSERT INTO events (type, ref, panel, data, created_at) VALUES (?, ?, ?, ?, ?)",
    type_, ref, panel, json.encode(data), now)
end

return M
