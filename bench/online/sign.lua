-- POST /v1/apps/{sdkappid}/usersigs, a distinct identifier per request: <prefix>u<thread>_<n>.
-- Usage: wrk ... -s bench/online/sign.lua http://127.0.0.1:PORT -- TOKEN_FILE SDKAPPID PREFIX
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

local headers, path, stem
local counter = 0

function init(args)
    assert(#args == 3, "arguments: TOKEN_FILE SDKAPPID PREFIX")
    assert(string.match(args[2], "^[0-9]+$"), "SDKAPPID must be digits")
    assert(string.match(args[3], "^[A-Za-z0-9]*$"), "PREFIX must be letters and digits")
    headers = {
        ["Authorization"] = "Bearer " .. first_line(args[1]),
        ["Content-Type"] = "application/json",
    }
    path = "/v1/apps/" .. args[2] .. "/usersigs"
    stem = args[3] .. "u" .. tid .. "_"
    expect = '"usersig":"'
end

function request()
    sent = sent + 1
    counter = counter + 1
    return wrk.format("POST", path, headers, '{"identifier":"' .. stem .. counter .. '"}')
end
