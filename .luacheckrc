std = "max"
max_line_length = 110
files["spec"] = { std = "+busted", max_line_length = 130 }
files["lua/smm/transport/ngx.lua"] = { globals = { "ngx" } }
files["lua/smm/book/threaded.lua"] = { globals = { "ngx" } }
files["spec/helpers/nginx_book_app.lua"] = { globals = { "ngx" } }
files["examples/nginx"] = { globals = { "ngx" } }
exclude_files = { "build" }
