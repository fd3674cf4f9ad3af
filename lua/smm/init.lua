-- lua-smm: a client for the SMM panel API v2.
--
--   local smm = require "smm"
--   local client = smm.new{ url = "https://panel.example/api/v2", key = os.getenv("SMM_API_KEY") }
--   local b, err = client:balance()
local client = require "smm.client"
local errors = require "smm.errors"
local normalize = require "smm.normalize"
local options = require "smm.options"

local M = {
  _VERSION = "0.1.0",
}

-- syntax: client = smm.new{ url = ..., key = ..., [options] }   (raises on misuse)
M.new = client.new

-- syntax: bool = smm.is_error(value)
M.is_error = errors.is

-- syntax: text = smm.redact(text, secret | { secret, ... })
-- Each secret, raw or percent-, JSON- or HTML-escaped, replaced by ***.
M.redact = errors.scrub

-- syntax: list = smm.secrets(key, url [, proxy])   -- the key and the URLs' credentials, for redact
M.secrets = options.secrets

-- syntax: text = smm.printable_url(url)   -- without user:password@, query string or fragment
M.printable_url = options.printable_url

-- syntax: bool = smm.is_final(status)   -- "Completed", "Partial", "Canceled", "Refunded"
M.is_final = normalize.is_final

-- syntax: bool = smm.is_refill_final(status)
M.is_refill_final = normalize.is_refill_final

-- syntax: book, err = smm.book.open("sqlite:/path/orders.db" | "postgresql://user:pw@host/db")
-- The order book (smm.book), loaded when first used: plain clients never load LuaDBI.
return setmetatable(M, { __index = function(t, name)
  if name == "book" then
    local book = require "smm.book"
    rawset(t, "book", book)
    return book
  end
end })
