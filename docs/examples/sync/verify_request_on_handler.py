import os  # added for the tests
import trio_socketserver.sync as socketserver

class MyRequestHandler(socketserver.BaseRequestHandler):
    def verify_request(self, request, client_address):
        # Check if the client's IP address is in a whitelist.
        if client_address[0] not in ["127.0.0.1", "192.168.1.100"]:
            return False

        # Otherwise, allow the request.
        return True

server = socketserver.TCPServer(("", int(os.environ.get("EXAMPLE_PORT", "80"))), MyRequestHandler)  # port from the environment
print("listening on", server.server_address, flush=True)  # added for the tests
server.serve_forever()
