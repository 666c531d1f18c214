import os  # added for the tests
import trio_socketserver.sync as socketserver

class MyTCPHandler(socketserver.BaseRequestHandler):

    def handle(self):
        # Do something with the client connection
        pass

if __name__ == "__main__":
    HOST, PORT = "localhost", int(os.environ.get("EXAMPLE_PORT", "9999"))  # port from the environment

    # Create the server with AF_INET address family
    server = socketserver.TCPServer((HOST, PORT), MyTCPHandler)

    # Start the server
    print("listening on", server.server_address, flush=True)  # added for the tests
    server.serve_forever()
