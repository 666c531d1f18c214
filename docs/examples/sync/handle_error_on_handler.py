import os  # added for the tests
import logging
import trio_socketserver.sync as socketserver

class MyRequestHandler(socketserver.BaseRequestHandler):

    def handle_error(self, request, client_address):
        logging.error("Error handling request from {}: {}".format(client_address, request))

server = socketserver.TCPServer(("", int(os.environ.get("EXAMPLE_PORT", "8000"))), MyRequestHandler)  # port from the environment
print("listening on", server.server_address, flush=True)  # added for the tests
server.serve_forever()
