std = "max"
max_line_length = 110
files["spec"] = { std = "+busted", max_line_length = 130 }
files["lua/smm/transport/ngx.lua"] = { globals = { "ngx" } }
files["lua/smm/book/threaded.lua"] = { globals = { "ngx" } }
files["lua/smm/book/hooks.lua"] = { globals = { "ngx" } } -- webhooks over cosockets inside nginx
files["lua/smm/book/webhook_ngx.lua"] = { globals = { "ngx" } }
files["lua/smm/book/background.lua"] = { globals = { "ngx" } }
files["lua/smm/book/sync.lua"] = { globals = { "ngx" } } -- its threaded round runs only in nginx
files["spec/helpers/nginx_book_app.lua"] = { globals = { "ngx" } }
files["examples/nginx"] = { globals = { "ngx" } }
exclude_files = { "build" }
